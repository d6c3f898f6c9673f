CREATE TABLE "session_folders" (
	"conversation_id" uuid NOT NULL,
	"session_id" text NOT NULL,
	"archive" "bytea" NOT NULL,
	"sha256" text NOT NULL,
	"size_bytes" bigint NOT NULL,
	"file_count" integer NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "session_folders_pk" PRIMARY KEY("conversation_id","session_id")
);
--> statement-breakpoint
ALTER TABLE "session_folders" ADD CONSTRAINT "session_folders_session_fk" FOREIGN KEY ("conversation_id","session_id") REFERENCES "public"."sessions"("conversation_id","session_id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
-- Compressed by agentq already (see 0001).
ALTER TABLE "session_folders" ALTER COLUMN "archive" SET STORAGE EXTERNAL;
