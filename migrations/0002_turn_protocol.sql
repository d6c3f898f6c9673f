ALTER TABLE "turns" ADD COLUMN "run_session_id" text;--> statement-breakpoint
ALTER TABLE "turns" ADD COLUMN "cancel_requested_at" timestamp with time zone;