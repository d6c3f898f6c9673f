-- The Agent SDK adapter's append in one call (src/sdk/append.ts, docs/sdk-interop.md), for
-- the case the adapter meets on every append to a session but its first in a process: the
-- key, the session head and its uuid index are where this adapter last left them. The
-- adapter passes that head (p_line_count, p_byte_count, p_head_tail_sha256) and the batch
-- already cut into chunks after it; the chunks' tail digest was computed from the bytes it
-- stored there itself, which the head's digest vouches for.
--
-- Returns 'appended', or, having written nothing, why the adapter must take its full path
-- instead (which reads the head, catches the index up, skips repeated uuids and reports a
-- busy conversation with its own error): 'stale' (the key, the head, an uncommitted tail or
-- the index is not as given), 'busy' (a worker holds the conversation's lease), 'known'
-- (some uuid of the batch is stored already).
--
-- Locks in the full path's order: the key row (share), the session head (update), the
-- conversation row (share). Being one statement, it commits or rolls back whole.
CREATE OR REPLACE FUNCTION agentq_sdk_append(
  p_tenant_id text,
  p_project_key text,
  p_sdk_session_id text,
  p_conversation_id uuid,
  p_file_id text,
  p_line_count bigint,
  p_byte_count bigint,
  p_head_tail_sha256 text,
  p_tail_sha256 text,
  p_codec text,
  p_line_counts integer[],
  p_byte_lens integer[],
  p_data_lens integer[],
  p_data bytea,
  p_uuids text[],
  p_sidecar text,
  p_point_conversation boolean
) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  h sessions;
  v_lines bigint := (SELECT coalesce(sum(n), 0) FROM unnest(p_line_counts) n);
  v_bytes bigint := (SELECT coalesce(sum(n), 0) FROM unnest(p_byte_lens) n);
BEGIN
  PERFORM 1 FROM sdk_sessions k
   WHERE k.tenant_id = p_tenant_id AND k.project_key = p_project_key AND k.session_id = p_sdk_session_id
     AND k.conversation_id = p_conversation_id
     FOR SHARE;
  IF NOT FOUND THEN
    RETURN 'stale';
  END IF;
  SELECT * INTO h FROM sessions s
   WHERE s.conversation_id = p_conversation_id AND s.session_id = p_file_id FOR UPDATE;
  IF NOT FOUND OR h.line_count <> p_line_count OR h.byte_count <> p_byte_count
     OR h.tail_sha256 IS DISTINCT FROM p_head_tail_sha256 OR h.committed_line_count <> h.line_count THEN
    RETURN 'stale';
  END IF;
  PERFORM 1 FROM conversations c
   WHERE c.id = p_conversation_id AND c.lease_owner IS NOT NULL AND c.lease_expires_at > now()
     FOR SHARE;
  IF FOUND THEN
    RETURN 'busy';
  END IF;
  PERFORM 1 FROM session_uuid_scans u
   WHERE u.conversation_id = p_conversation_id AND u.session_id = p_file_id AND u.scanned_line_count = h.line_count;
  IF NOT FOUND THEN
    RETURN 'stale';
  END IF;
  -- The batch's uuids (none repeated) into the index first: a plain insert, cheaper than
  -- a lookup and an ON CONFLICT insert, fails on a uuid stored already, undoing only itself.
  BEGIN
    INSERT INTO session_entry_uuids (conversation_id, session_id, uuid)
    SELECT p_conversation_id, p_file_id, u FROM unnest(p_uuids) u;
  EXCEPTION WHEN unique_violation THEN
    RETURN 'known';
  END;
  -- Nothing was uncommitted, and the head is locked: the new lines are committed as written.
  INSERT INTO session_chunks
    (conversation_id, session_id, first_line, line_count, byte_offset, byte_len, attempt, committed, codec, data)
  SELECT p_conversation_id, p_file_id,
         p_line_count + sum(k.lines) OVER w - k.lines, k.lines,
         p_byte_count + sum(k.bytes) OVER w - k.bytes, k.bytes,
         'sdk', true, p_codec,
         substring(p_data FROM (sum(k.data_len) OVER w - k.data_len + 1)::integer FOR k.data_len)
    FROM unnest(p_line_counts, p_byte_lens, p_data_lens) WITH ORDINALITY AS k(lines, bytes, data_len, i)
  WINDOW w AS (ORDER BY k.i ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);
  UPDATE sessions s
     SET line_count = s.line_count + v_lines, byte_count = s.byte_count + v_bytes, tail_sha256 = p_tail_sha256,
         committed_line_count = s.line_count + v_lines, committed_byte_count = s.byte_count + v_bytes,
         committed_tail_sha256 = p_tail_sha256, updated_at = now()
   WHERE s.conversation_id = p_conversation_id AND s.session_id = p_file_id;
  UPDATE session_uuid_scans u SET scanned_line_count = h.line_count + v_lines
   WHERE u.conversation_id = p_conversation_id AND u.session_id = p_file_id;
  IF p_sidecar IS NOT NULL THEN
    INSERT INTO session_sidecars (conversation_id, session_id, content) VALUES (p_conversation_id, p_file_id, p_sidecar)
    ON CONFLICT (conversation_id, session_id) DO UPDATE SET content = excluded.content, updated_at = now()
     WHERE session_sidecars.content IS DISTINCT FROM excluded.content;
  END IF;
  IF p_point_conversation THEN
    UPDATE conversations c SET session_id = p_sdk_session_id, updated_at = now()
     WHERE c.id = p_conversation_id AND c.session_id IS NULL;
  END IF;
  RETURN 'appended';
END
$$;
