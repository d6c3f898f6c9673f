CREATE TABLE "conversations" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" text DEFAULT 'default' NOT NULL,
	"external_id" text NOT NULL,
	"session_id" text,
	"next_seq" integer DEFAULT 1 NOT NULL,
	"lease_owner" text,
	"lease_expires_at" timestamp with time zone,
	"fencing_token" bigint DEFAULT 0 NOT NULL,
	"default_options" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"turns_total" integer DEFAULT 0 NOT NULL,
	"cost_usd" numeric(14, 6) DEFAULT '0' NOT NULL,
	"input_tokens" bigint DEFAULT 0 NOT NULL,
	"output_tokens" bigint DEFAULT 0 NOT NULL,
	"halt_on_failure" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "conversations_tenant_external_uq" UNIQUE("tenant_id","external_id")
);
--> statement-breakpoint
CREATE TABLE "session_chunks" (
	"conversation_id" uuid NOT NULL,
	"session_id" text NOT NULL,
	"first_line" bigint NOT NULL,
	"line_count" integer NOT NULL,
	"byte_offset" bigint NOT NULL,
	"byte_len" integer NOT NULL,
	"attempt" text NOT NULL,
	"committed" boolean DEFAULT false NOT NULL,
	"codec" text NOT NULL,
	"data" "bytea" NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "session_chunks_pk" PRIMARY KEY("conversation_id","session_id","first_line"),
	CONSTRAINT "session_chunks_shape_ck" CHECK ("session_chunks"."first_line" >= 0 and "session_chunks"."byte_offset" >= "session_chunks"."first_line" and "session_chunks"."line_count" > 0 and "session_chunks"."byte_len" >= "session_chunks"."line_count"),
	CONSTRAINT "session_chunks_codec_ck" CHECK ("session_chunks"."codec" in ('identity', 'gzip', 'br'))
);
--> statement-breakpoint
CREATE TABLE "sessions" (
	"conversation_id" uuid NOT NULL,
	"session_id" text NOT NULL,
	"line_count" bigint DEFAULT 0 NOT NULL,
	"byte_count" bigint DEFAULT 0 NOT NULL,
	"committed_line_count" bigint DEFAULT 0 NOT NULL,
	"committed_byte_count" bigint DEFAULT 0 NOT NULL,
	"tail_sha256" text,
	"committed_tail_sha256" text,
	"forked_from" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "sessions_pk" PRIMARY KEY("conversation_id","session_id"),
	CONSTRAINT "sessions_counts_ck" CHECK ("sessions"."committed_line_count" >= 0 and "sessions"."committed_byte_count" >= 0 and "sessions"."line_count" >= "sessions"."committed_line_count" and "sessions"."byte_count" >= "sessions"."committed_byte_count" and "sessions"."byte_count" >= "sessions"."line_count")
);
--> statement-breakpoint
CREATE TABLE "turn_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"turn_id" uuid NOT NULL,
	"attempt" integer NOT NULL,
	"seq" integer NOT NULL,
	"type" text NOT NULL,
	"payload" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "turn_events_turn_attempt_seq_uq" UNIQUE("turn_id","attempt","seq")
);
--> statement-breakpoint
CREATE TABLE "turns" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"conversation_id" uuid NOT NULL,
	"seq" integer NOT NULL,
	"prompt" text NOT NULL,
	"options" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"idempotency_key" text,
	"status" text DEFAULT 'queued' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"session_id_before" text,
	"session_id_after" text,
	"result" text,
	"error" jsonb,
	"cost_usd" numeric(14, 6),
	"usage" jsonb,
	"num_turns" integer,
	"source" text DEFAULT 'api' NOT NULL,
	"priority" integer DEFAULT 0 NOT NULL,
	"run_at" timestamp with time zone DEFAULT now() NOT NULL,
	"queued_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	CONSTRAINT "turns_conversation_seq_uq" UNIQUE("conversation_id","seq"),
	CONSTRAINT "turns_conversation_idempotency_uq" UNIQUE("conversation_id","idempotency_key"),
	CONSTRAINT "turns_status_ck" CHECK ("turns"."status" in ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
	CONSTRAINT "turns_source_ck" CHECK ("turns"."source" in ('api', 'cli', 'schedule')),
	CONSTRAINT "turns_seq_ck" CHECK ("turns"."seq" >= 1),
	CONSTRAINT "turns_attempts_ck" CHECK ("turns"."attempts" >= 0)
);
--> statement-breakpoint
CREATE TABLE "workspaces" (
	"conversation_id" uuid PRIMARY KEY NOT NULL,
	"archive" "bytea" NOT NULL,
	"sha256" text NOT NULL,
	"size_bytes" bigint NOT NULL,
	"file_count" integer NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "session_chunks" ADD CONSTRAINT "session_chunks_session_fk" FOREIGN KEY ("conversation_id","session_id") REFERENCES "public"."sessions"("conversation_id","session_id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sessions" ADD CONSTRAINT "sessions_conversation_id_conversations_id_fk" FOREIGN KEY ("conversation_id") REFERENCES "public"."conversations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "turn_events" ADD CONSTRAINT "turn_events_turn_id_turns_id_fk" FOREIGN KEY ("turn_id") REFERENCES "public"."turns"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "turns" ADD CONSTRAINT "turns_conversation_id_conversations_id_fk" FOREIGN KEY ("conversation_id") REFERENCES "public"."conversations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "workspaces" ADD CONSTRAINT "workspaces_conversation_id_conversations_id_fk" FOREIGN KEY ("conversation_id") REFERENCES "public"."conversations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "turn_events_created_at_idx" ON "turn_events" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "turns_conversation_status_seq_idx" ON "turns" USING btree ("conversation_id","status","seq");--> statement-breakpoint
CREATE INDEX "turns_status_run_at_idx" ON "turns" USING btree ("status","run_at");