-- Fewer writes per turn. A turn's row is written three times (enqueue, claim, end), and each
-- write changes `status`, which indexes hold, so none is a HOT update: every write adds an
-- entry to every index of `turns`. Three of its six indexes held rows no query reads:
-- - turns_conversation_status_seq_idx (conversation_id, status, seq): every query by a
--   conversation's status asks for its unfinished turns, which
--   turns_unfinished_conversation_seq_idx (0018) holds, and nothing else: dropped;
-- - the idempotency key's unique constraint held a NULL key for every turn without one:
--   now a unique index of the turns with a key only (NULL keys never collided anyway);
-- - turns_status_run_at_idx held every finished turn: the reconciler, the backlog gauge
--   and `agentq stats` read the queued and running ones only.
-- 17 index entries per turn become 10. The new indexes come first, under new names, so an
-- operator can build them beforehand with CREATE INDEX CONCURRENTLY (docs/production.md);
-- then the old ones go.
CREATE UNIQUE INDEX IF NOT EXISTS "turns_idempotency_key_uq" ON "turns" USING btree ("conversation_id","idempotency_key") WHERE idempotency_key is not null;--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "turns_due_run_at_idx" ON "turns" USING btree ("status","run_at") WHERE status in ('queued', 'running');--> statement-breakpoint
ALTER TABLE "turns" DROP CONSTRAINT IF EXISTS "turns_conversation_idempotency_uq";--> statement-breakpoint
DROP INDEX IF EXISTS "turns_conversation_status_seq_idx";--> statement-breakpoint
DROP INDEX IF EXISTS "turns_status_run_at_idx";--> statement-breakpoint
-- The commit (0014): new lines after a head with nothing uncommitted (no checkpoint of the
-- attempt stored lines, no other attempt left any) are written committed, and the head's
-- committed boundary moves with it in the same update, instead of writing them
-- uncommitted, then updating each chunk and the head again in agentq_commit_session_lines.
-- With lines uncommitted before them it goes the way it went. Same parameters, same result.
CREATE OR REPLACE FUNCTION agentq_commit_turn(
  p_turn_id uuid,
  p_conversation_id uuid,
  p_fencing_token bigint,
  p_worker_id text,
  p_status text,
  p_result text,
  p_error jsonb,
  p_cost_usd numeric,
  p_usage jsonb,
  p_num_turns integer,
  p_tool_calls integer,
  p_permission_denials jsonb,
  p_session_id_after text,
  p_conversation_session_id text,
  p_run_session_id text,
  p_input_tokens bigint,
  p_output_tokens bigint,
  p_keep_warm_ms double precision,
  p_cli_attempt text,
  p_cli_version text,
  p_halt_error jsonb,
  p_attempt integer,
  p_events jsonb,
  p_session_id text,
  p_forked_from text,
  p_first_line bigint,
  p_byte_offset bigint,
  p_tail_sha256 text,
  p_codec text,
  p_line_counts integer[],
  p_byte_lens integer[],
  p_data_lens integer[],
  p_data bytea,
  p_subagent_ids text[]
) RETURNS TABLE (fenced boolean, next_id uuid, next_run_at timestamptz, next_priority integer)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_chunks integer := coalesce(cardinality(p_line_counts), 0);
  v_lines bigint := (SELECT coalesce(sum(n), 0) FROM unnest(p_line_counts) n);
  v_bytes bigint := (SELECT coalesce(sum(n), 0) FROM unnest(p_byte_lens) n);
  v_committed boolean := false;
  v_id text;
  v_intruder text;
BEGIN
  IF p_session_id IS NOT NULL THEN
    IF p_first_line = 0 AND p_byte_offset = 0 THEN
      INSERT INTO sessions (conversation_id, session_id, forked_from)
      VALUES (p_conversation_id, p_session_id, p_forked_from) ON CONFLICT DO NOTHING;
    END IF;
    IF v_chunks > 0 THEN
      -- SET reads the row as it was: the boundary moves only if it stood at the head.
      UPDATE sessions s
         SET line_count = s.line_count + v_lines,
             byte_count = s.byte_count + v_bytes,
             tail_sha256 = p_tail_sha256,
             committed_line_count = CASE WHEN s.committed_line_count = s.line_count THEN s.line_count + v_lines ELSE s.committed_line_count END,
             committed_byte_count = CASE WHEN s.committed_line_count = s.line_count THEN s.byte_count + v_bytes ELSE s.committed_byte_count END,
             committed_tail_sha256 = CASE WHEN s.committed_line_count = s.line_count THEN p_tail_sha256 ELSE s.committed_tail_sha256 END,
             updated_at = now()
       WHERE s.conversation_id = p_conversation_id AND s.session_id = p_session_id
         AND s.line_count = p_first_line AND s.byte_count = p_byte_offset
      RETURNING s.committed_line_count = s.line_count INTO v_committed;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'session %: the stored head is no longer at line %', p_session_id, p_first_line USING ERRCODE = 'AQ409';
      END IF;
      INSERT INTO session_chunks
        (conversation_id, session_id, first_line, line_count, byte_offset, byte_len, attempt, committed, codec, data)
      SELECT p_conversation_id, p_session_id,
             p_first_line + sum(k.lines) OVER w - k.lines, k.lines,
             p_byte_offset + sum(k.bytes) OVER w - k.bytes, k.bytes,
             p_attempt::text, v_committed, p_codec,
             substring(p_data FROM (sum(k.data_len) OVER w - k.data_len + 1)::integer FOR k.data_len)
        FROM unnest(p_line_counts, p_byte_lens, p_data_lens) WITH ORDINALITY AS k(lines, bytes, data_len, i)
      WINDOW w AS (ORDER BY k.i ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);
    END IF;
    -- The session itself needs no commit when its new lines went in committed.
    FOREACH v_id IN ARRAY CASE WHEN v_committed THEN coalesce(p_subagent_ids, '{}'::text[])
                               ELSE array_prepend(p_session_id, coalesce(p_subagent_ids, '{}'::text[])) END LOOP
      SELECT l.intruder INTO v_intruder FROM agentq_commit_session_lines(p_conversation_id, v_id, p_attempt::text, false) l;
      IF v_intruder IS NOT NULL THEN
        RAISE EXCEPTION 'session %: attempt % appended after attempt %', v_id, v_intruder, p_attempt USING ERRCODE = 'AQ410', DETAIL = v_intruder;
      END IF;
    END LOOP;
  END IF;
  RETURN QUERY SELECT * FROM agentq_finish_turn(p_turn_id, p_conversation_id, p_fencing_token, p_worker_id, p_status, p_result,
    p_error, p_cost_usd, p_usage, p_num_turns, p_tool_calls, p_permission_denials, p_session_id_after, p_conversation_session_id,
    p_run_session_id, p_input_tokens, p_output_tokens, p_keep_warm_ms, p_cli_attempt, p_cli_version, p_halt_error, p_attempt, p_events);
END
$$;
