CREATE TABLE "session_sidecars" (
	"conversation_id" uuid NOT NULL,
	"session_id" text NOT NULL,
	"content" text NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "session_sidecars_pk" PRIMARY KEY("conversation_id","session_id")
);
--> statement-breakpoint
ALTER TABLE "session_sidecars" ADD CONSTRAINT "session_sidecars_session_fk" FOREIGN KEY ("conversation_id","session_id") REFERENCES "public"."sessions"("conversation_id","session_id") ON DELETE cascade ON UPDATE no action;