ALTER TABLE "turns" DROP CONSTRAINT "turns_status_ck";--> statement-breakpoint
ALTER TABLE "approvals" ADD COLUMN "answered_in_attempt" integer;--> statement-breakpoint
ALTER TABLE "turns" ADD COLUMN "approval_rounds" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "turns" ADD COLUMN "attempts_before_round" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "turns" ADD CONSTRAINT "turns_status_ck" CHECK ("turns"."status" in ('queued', 'running', 'awaiting_approval', 'succeeded', 'failed', 'cancelled'));