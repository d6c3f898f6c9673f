-- The commit as one call (docs/design.md, "One round trip per step"): the session's last
-- lines, the commit of every stored line, and agentq_finish_turn (0012), in one statement of
-- the commit transaction. Lock order as before: the session head rows, then the
-- conversation row (in agentq_finish_turn's fence check), then the turn row.

-- Commits every stored line of a session (src/store/sessions.ts commitSessionLines has the
-- semantics): unless another attempt appended after this one's first uncommitted chunk
-- (`intruder`, nothing changed), the uncommitted chunks become committed and the committed
-- boundary moves to the head; with p_point_conversation the conversation points at the session.
-- No row: no session of that id.
CREATE OR REPLACE FUNCTION agentq_commit_session_lines(
  p_conversation_id uuid,
  p_session_id text,
  p_attempt text,
  p_point_conversation boolean
) RETURNS TABLE (line_count bigint, byte_count bigint, committed_line_count bigint, committed_byte_count bigint, intruder text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  h sessions;
  v_intruder text;
BEGIN
  SELECT * INTO h FROM sessions s
   WHERE s.conversation_id = p_conversation_id AND s.session_id = p_session_id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  SELECT c.attempt INTO v_intruder FROM session_chunks c
   WHERE c.conversation_id = p_conversation_id AND c.session_id = p_session_id
     AND c.first_line >= h.committed_line_count AND c.attempt <> p_attempt
     AND c.first_line > (SELECT min(m.first_line) FROM session_chunks m
                          WHERE m.conversation_id = p_conversation_id AND m.session_id = p_session_id
                            AND m.first_line >= h.committed_line_count AND m.attempt = p_attempt)
   ORDER BY c.first_line LIMIT 1;
  IF v_intruder IS NULL THEN
    UPDATE session_chunks c SET committed = true
     WHERE c.conversation_id = p_conversation_id AND c.session_id = p_session_id
       AND c.first_line >= h.committed_line_count;
    IF h.line_count > h.committed_line_count THEN
      UPDATE sessions s
         SET committed_line_count = h.line_count, committed_byte_count = h.byte_count,
             committed_tail_sha256 = h.tail_sha256, updated_at = now()
       WHERE s.conversation_id = p_conversation_id AND s.session_id = p_session_id;
    END IF;
    IF p_point_conversation THEN
      UPDATE conversations c SET session_id = p_session_id, updated_at = now() WHERE c.id = p_conversation_id;
    END IF;
  END IF;
  RETURN QUERY SELECT h.line_count, h.byte_count, h.committed_line_count, h.committed_byte_count, v_intruder;
END
$$;
--> statement-breakpoint
-- The commit. Before agentq_finish_turn (same parameters first), for session p_session_id
-- (null: none):
-- 1. appends the chunks p_line_counts/p_byte_lens/p_data_lens describe (their encoded bytes
--    concatenated in p_data, in order) after the head at (p_first_line, p_byte_offset); the
--    head then ends at p_tail_sha256. At (0, 0) a missing head row is created first. A head
--    found elsewhere raises AQ409 with nothing written: the caller read the file from a head
--    that is no longer current and reads it again under the head's lock.
-- 2. commits the session's stored lines and those of p_subagent_ids (its subagent
--    transcripts this attempt stored); another attempt's chunk after this one's raises AQ410
--    (detail: that attempt).
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
  v_id text;
  v_intruder text;
BEGIN
  IF p_session_id IS NOT NULL THEN
    IF p_first_line = 0 AND p_byte_offset = 0 THEN
      INSERT INTO sessions (conversation_id, session_id, forked_from)
      VALUES (p_conversation_id, p_session_id, p_forked_from) ON CONFLICT DO NOTHING;
    END IF;
    IF v_chunks > 0 THEN
      UPDATE sessions s
         SET line_count = s.line_count + (SELECT sum(n) FROM unnest(p_line_counts) n),
             byte_count = s.byte_count + (SELECT sum(n) FROM unnest(p_byte_lens) n),
             tail_sha256 = p_tail_sha256,
             updated_at = now()
       WHERE s.conversation_id = p_conversation_id AND s.session_id = p_session_id
         AND s.line_count = p_first_line AND s.byte_count = p_byte_offset;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'session %: the stored head is no longer at line %', p_session_id, p_first_line USING ERRCODE = 'AQ409';
      END IF;
      INSERT INTO session_chunks
        (conversation_id, session_id, first_line, line_count, byte_offset, byte_len, attempt, committed, codec, data)
      SELECT p_conversation_id, p_session_id,
             p_first_line + sum(k.lines) OVER w - k.lines, k.lines,
             p_byte_offset + sum(k.bytes) OVER w - k.bytes, k.bytes,
             p_attempt::text, false, p_codec,
             substring(p_data FROM (sum(k.data_len) OVER w - k.data_len + 1)::integer FOR k.data_len)
        FROM unnest(p_line_counts, p_byte_lens, p_data_lens) WITH ORDINALITY AS k(lines, bytes, data_len, i)
      WINDOW w AS (ORDER BY k.i ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);
    END IF;
    FOREACH v_id IN ARRAY array_prepend(p_session_id, coalesce(p_subagent_ids, '{}'::text[])) LOOP
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
