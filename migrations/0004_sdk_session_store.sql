CREATE TABLE "sdk_sessions" (
	"tenant_id" text NOT NULL,
	"project_key" text NOT NULL,
	"session_id" text NOT NULL,
	"conversation_id" uuid NOT NULL,
	"created_conversation" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "sdk_sessions_pk" PRIMARY KEY("tenant_id","project_key","session_id")
);
--> statement-breakpoint
CREATE TABLE "session_entry_uuids" (
	"conversation_id" uuid NOT NULL,
	"session_id" text NOT NULL,
	"uuid" text NOT NULL,
	CONSTRAINT "session_entry_uuids_pk" PRIMARY KEY("conversation_id","session_id","uuid")
);
--> statement-breakpoint
CREATE TABLE "session_uuid_scans" (
	"conversation_id" uuid NOT NULL,
	"session_id" text NOT NULL,
	"scanned_line_count" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "session_uuid_scans_pk" PRIMARY KEY("conversation_id","session_id")
);
--> statement-breakpoint
ALTER TABLE "sdk_sessions" ADD CONSTRAINT "sdk_sessions_conversation_id_conversations_id_fk" FOREIGN KEY ("conversation_id") REFERENCES "public"."conversations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "session_entry_uuids" ADD CONSTRAINT "session_entry_uuids_session_fk" FOREIGN KEY ("conversation_id","session_id") REFERENCES "public"."sessions"("conversation_id","session_id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "session_uuid_scans" ADD CONSTRAINT "session_uuid_scans_session_fk" FOREIGN KEY ("conversation_id","session_id") REFERENCES "public"."sessions"("conversation_id","session_id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "sdk_sessions_tenant_session_idx" ON "sdk_sessions" USING btree ("tenant_id","session_id");--> statement-breakpoint
CREATE INDEX "sdk_sessions_conversation_idx" ON "sdk_sessions" USING btree ("conversation_id");