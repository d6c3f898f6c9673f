-- The head checks of agentq_enqueue_turn and agentq_claim_turn, and agentq_finish_turn's next
-- queued turn, through an index of the unfinished turns only (src/store/schema.ts). It reads
-- the turns table once and holds writes to it meanwhile; IF NOT EXISTS lets an operator with
-- a large table build it beforehand with CREATE INDEX CONCURRENTLY (docs/production.md).

CREATE INDEX IF NOT EXISTS "turns_unfinished_conversation_seq_idx" ON "turns" USING btree ("conversation_id","seq") WHERE status in ('queued', 'running', 'awaiting_approval');