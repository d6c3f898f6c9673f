ALTER TABLE "turns" ADD COLUMN "tool_calls" integer;--> statement-breakpoint
ALTER TABLE "turns" ADD COLUMN "permission_denials" jsonb;