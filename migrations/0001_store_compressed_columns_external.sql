-- Session chunks and workspace archives are compressed by agentq before they are stored.
-- EXTERNAL keeps them out of line without Postgres compressing them again (pglz on
-- already-compressed bytes only costs CPU).
ALTER TABLE "session_chunks" ALTER COLUMN "data" SET STORAGE EXTERNAL;
--> statement-breakpoint
ALTER TABLE "workspaces" ALTER COLUMN "archive" SET STORAGE EXTERNAL;
