-- The turn protocol's steps as one call each (docs/design.md, "One round trip per step").
-- In READ COMMITTED each statement of a VOLATILE function takes a fresh snapshot, so the
-- statements below see what the same statements sent one by one in a transaction would see,
-- after the row lock, in one round trip. The unfinished statuses are
-- unfinishedTurnStatuses in src/store/schema.ts (test/protocolFunctions.test.ts checks both agree).
-- Rows go back as jsonb (numeric columns as text, so no digit is lost); src/store/jsonRow.ts
-- turns them into the drizzle row types.

-- A row as jsonb with its numeric cost as text.
CREATE OR REPLACE FUNCTION agentq_row_json(r anyelement, cost numeric) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
  SELECT to_jsonb(r) || jsonb_build_object('cost_usd', cost::text)
$$;
--> statement-breakpoint
-- Enqueue (src/store/turns.ts insertTurn): lock or create the conversation, return the turn
-- an idempotency key names (changing nothing), else take the next seq, set the options the
-- call sets, insert the turn and say whether it is the conversation's head.
-- p_set_approvals: whether p_approvals (null: remove) replaces the conversation's policy.
CREATE OR REPLACE FUNCTION agentq_enqueue_turn(
  p_tenant_id text,
  p_external_id text,
  p_halt_on_failure boolean,
  p_set_approvals boolean,
  p_approvals jsonb,
  p_prompt text,
  p_options jsonb,
  p_idempotency_key text,
  p_priority integer,
  p_source text,
  p_delay_ms double precision
) RETURNS TABLE (created boolean, is_head boolean, turn jsonb)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_conv uuid;
  v_seq integer;
  t turns;
BEGIN
  SELECT c.id INTO v_conv FROM conversations c
   WHERE c.tenant_id = p_tenant_id AND c.external_id = p_external_id FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO conversations (tenant_id, external_id) VALUES (p_tenant_id, p_external_id)
      ON CONFLICT (tenant_id, external_id) DO NOTHING RETURNING id INTO v_conv;
    IF v_conv IS NULL THEN
      -- Another enqueue created it meanwhile: wait for its row like any other.
      SELECT c.id INTO STRICT v_conv FROM conversations c
       WHERE c.tenant_id = p_tenant_id AND c.external_id = p_external_id FOR UPDATE;
    END IF;
  END IF;
  IF p_idempotency_key IS NOT NULL THEN
    SELECT * INTO t FROM turns x WHERE x.conversation_id = v_conv AND x.idempotency_key = p_idempotency_key;
    IF FOUND THEN
      RETURN QUERY SELECT false, false, agentq_row_json(t, t.cost_usd);
      RETURN;
    END IF;
  END IF;
  UPDATE conversations c
     SET next_seq = c.next_seq + 1,
         updated_at = now(),
         halt_on_failure = coalesce(p_halt_on_failure, c.halt_on_failure),
         default_options = CASE
           WHEN NOT p_set_approvals THEN c.default_options
           WHEN p_approvals IS NULL THEN c.default_options - 'approvals'
           ELSE coalesce(c.default_options, '{}'::jsonb) || jsonb_build_object('approvals', p_approvals)
         END
   WHERE c.id = v_conv
   RETURNING c.next_seq - 1 INTO v_seq;
  INSERT INTO turns (conversation_id, seq, prompt, options, idempotency_key, priority, source, run_at)
  VALUES (v_conv, v_seq, p_prompt, p_options, p_idempotency_key, p_priority, p_source,
          now() + make_interval(secs => p_delay_ms / 1000))
  RETURNING * INTO t;
  RETURN QUERY SELECT true,
    NOT EXISTS (SELECT 1 FROM turns e WHERE e.conversation_id = v_conv
                  AND e.status IN ('queued', 'running', 'awaiting_approval') AND e.seq < v_seq),
    agentq_row_json(t, t.cost_usd);
END
$$;
--> statement-breakpoint
-- Claim (src/store/turns.ts claimTurn): under the conversation's lock, take its lease for
-- the turn if the turn is the head and due and no live lease stands in the way (an expired
-- one is taken over; a warm one only by its owner or by a worker stealing it from
-- p_steal_from). kind: claimed | done | not_head | later | warm. A claim moves the fencing
-- token on and also returns the stored workspace's digest (the worker's next read).
CREATE OR REPLACE FUNCTION agentq_claim_turn(
  p_turn_id uuid,
  p_worker_id text,
  p_lease_ms double precision,
  p_steal_from text
) RETURNS TABLE (
  kind text,
  retry_at timestamptz,
  reason text,
  owner text,
  takeover boolean,
  warm_token bigint,
  turn jsonb,
  conversation jsonb,
  workspace_sha256 text,
  heads_session_id text,
  session_heads jsonb,
  session_folder_sha256 text
)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  c conversations;
  t turns;
  v_now timestamptz := now();
  v_lease_live boolean;
  v_warm_held boolean;
  v_own_warm boolean;
  v_takeover boolean;
  v_warm_token bigint;
  v_sid text;
BEGIN
  SELECT * INTO c FROM conversations x
   WHERE x.id = (SELECT y.conversation_id FROM turns y WHERE y.id = p_turn_id) FOR UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'done', NULL::timestamptz, NULL::text, NULL::text, NULL::boolean, NULL::bigint, NULL::jsonb, NULL::jsonb, NULL::text, NULL::text, NULL::jsonb, NULL::text;
    RETURN;
  END IF;
  -- The turn under the conversation's lock: its status may have changed meanwhile.
  SELECT * INTO t FROM turns x WHERE x.id = p_turn_id FOR UPDATE;
  IF NOT FOUND OR t.status NOT IN ('queued', 'running') THEN
    RETURN QUERY SELECT 'done', NULL::timestamptz, NULL::text, NULL::text, NULL::boolean, NULL::bigint, NULL::jsonb, NULL::jsonb, NULL::text, NULL::text, NULL::jsonb, NULL::text;
    RETURN;
  END IF;
  v_lease_live := c.lease_owner IS NOT NULL AND c.lease_expires_at IS NOT NULL AND c.lease_expires_at > v_now;
  v_warm_held := v_lease_live AND c.lease_warm;
  v_own_warm := v_warm_held AND c.lease_owner = p_worker_id;
  IF v_lease_live AND NOT v_warm_held THEN
    RETURN QUERY SELECT 'later', c.lease_expires_at, 'conversation leased by ' || c.lease_owner, NULL::text, NULL::boolean, NULL::bigint, NULL::jsonb, NULL::jsonb, NULL::text, NULL::text, NULL::jsonb, NULL::text;
    RETURN;
  END IF;
  IF EXISTS (SELECT 1 FROM turns e WHERE e.conversation_id = t.conversation_id
               AND e.status IN ('queued', 'running', 'awaiting_approval') AND e.seq < t.seq) THEN
    RETURN QUERY SELECT 'not_head', NULL::timestamptz, NULL::text, NULL::text, NULL::boolean, NULL::bigint, NULL::jsonb, NULL::jsonb, NULL::text, NULL::text, NULL::jsonb, NULL::text;
    RETURN;
  END IF;
  IF t.status = 'queued' AND t.run_at > v_now THEN
    RETURN QUERY SELECT 'later', t.run_at, 'not due yet', NULL::text, NULL::boolean, NULL::bigint, NULL::jsonb, NULL::jsonb, NULL::text, NULL::text, NULL::jsonb, NULL::text;
    RETURN;
  END IF;
  IF NOT (NOT v_lease_live OR v_own_warm OR (v_warm_held AND p_steal_from IS NOT NULL AND c.lease_owner = p_steal_from)) THEN
    RETURN QUERY SELECT 'warm', c.lease_expires_at, NULL::text, c.lease_owner, NULL::boolean, NULL::bigint, NULL::jsonb, agentq_row_json(c, c.cost_usd), NULL::text, NULL::text, NULL::jsonb, NULL::text;
    RETURN;
  END IF;
  v_takeover := t.status = 'running';
  v_warm_token := CASE WHEN v_own_warm THEN c.fencing_token END;
  UPDATE conversations x
     SET lease_owner = p_worker_id,
         lease_expires_at = now() + make_interval(secs => p_lease_ms / 1000),
         fencing_token = c.fencing_token + 1,
         lease_warm = false,
         updated_at = now()
   WHERE x.id = c.id
   RETURNING * INTO c;
  UPDATE turns x
     SET status = 'running',
         attempts = t.attempts + 1,
         started_at = coalesce(t.started_at, now()),
         session_id_before = CASE WHEN t.attempts = 0 THEN c.session_id ELSE t.session_id_before END
   WHERE x.id = t.id
   RETURNING * INTO t;
  -- The session a cold attempt resumes first (a retry's own, else the conversation's): its
  -- head, its subagent transcripts' heads and its folder's digest, the worker's next read.
  v_sid := coalesce(t.run_session_id, c.session_id);
  RETURN QUERY SELECT 'claimed', NULL::timestamptz, NULL::text, NULL::text, v_takeover, v_warm_token,
    agentq_row_json(t, t.cost_usd), agentq_row_json(c, c.cost_usd),
    (SELECT w.sha256 FROM workspaces w WHERE w.conversation_id = c.id),
    v_sid,
    CASE WHEN v_sid IS NOT NULL THEN
      (SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.session_id), '[]'::jsonb) FROM sessions s
        WHERE s.conversation_id = c.id AND (s.session_id = v_sid OR starts_with(s.session_id, v_sid || '/')))
    END,
    (SELECT f.sha256 FROM session_folders f WHERE f.conversation_id = c.id AND f.session_id = v_sid);
END
$$;
--> statement-breakpoint
-- Finish (src/store/turns.ts finishTurn), the last statement of a commit's transaction:
-- under the fence (the conversation row is locked by its update; fenced = false: the lease
-- is gone and nothing was written), release the lease (or hold it warm), add the totals,
-- store the attempt's last events (p_events: [{seq, type, payload}]), end the turn (or park
-- it awaiting approval), cancel what a halting conversation queued behind a failure, and
-- name the conversation's next queued turn, seen after the lock.
CREATE OR REPLACE FUNCTION agentq_finish_turn(
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
  p_events jsonb
) RETURNS TABLE (fenced boolean, next_id uuid, next_run_at timestamptz, next_priority integer)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_warm boolean := p_keep_warm_ms IS NOT NULL;
  v_parked boolean := p_status = 'awaiting_approval';
  v_halt boolean;
BEGIN
  UPDATE conversations c
     SET lease_owner = CASE WHEN v_warm THEN c.lease_owner END,
         lease_expires_at = CASE WHEN v_warm THEN now() + make_interval(secs => p_keep_warm_ms / 1000) END,
         lease_warm = v_warm,
         session_id = coalesce(p_conversation_session_id, c.session_id),
         -- A turn that ran to success under the gate answered every call left open before it.
         default_options = CASE WHEN p_status = 'succeeded' THEN c.default_options - 'openGatedCalls' ELSE c.default_options END,
         turns_total = c.turns_total + CASE WHEN v_parked THEN 0 ELSE 1 END,
         cost_usd = c.cost_usd + p_cost_usd,
         input_tokens = c.input_tokens + p_input_tokens,
         output_tokens = c.output_tokens + p_output_tokens,
         updated_at = now()
   WHERE c.id = p_conversation_id AND c.fencing_token = p_fencing_token AND c.lease_owner = p_worker_id
   RETURNING c.halt_on_failure INTO v_halt;
  IF NOT FOUND THEN
    RETURN QUERY SELECT false, NULL::uuid, NULL::timestamptz, NULL::integer;
    RETURN;
  END IF;
  v_halt := p_status = 'failed' AND v_halt;
  INSERT INTO turn_events (turn_id, attempt, seq, type, payload)
  SELECT p_turn_id, p_attempt, e.seq, e.type, e.payload
    FROM jsonb_to_recordset(coalesce(p_events, '[]'::jsonb)) AS e(seq integer, type text, payload text)
  ON CONFLICT DO NOTHING;
  UPDATE turns t
     SET status = p_status,
         result = p_result,
         error = p_error,
         -- A turn that waited for approvals adds each round's run to the ones before.
         cost_usd = coalesce(t.cost_usd, 0) + p_cost_usd,
         usage = p_usage,
         num_turns = coalesce(t.num_turns, 0) + p_num_turns,
         tool_calls = coalesce(t.tool_calls, 0) + p_tool_calls,
         approval_rounds = t.approval_rounds + CASE WHEN v_parked THEN 1 ELSE 0 END,
         attempts_before_round = CASE WHEN v_parked THEN t.attempts ELSE t.attempts_before_round END,
         permission_denials = p_permission_denials,
         session_id_after = p_session_id_after,
         run_session_id = coalesce(p_run_session_id, t.run_session_id),
         cli_versions = CASE WHEN p_cli_attempt IS NULL THEN t.cli_versions
                             ELSE coalesce(t.cli_versions, '{}'::jsonb) || jsonb_build_object(p_cli_attempt, p_cli_version) END,
         finished_at = CASE WHEN v_parked THEN NULL ELSE now() END
   WHERE t.id = p_turn_id;
  IF v_halt THEN
    UPDATE turns t SET status = 'cancelled', finished_at = now(), error = p_halt_error
     WHERE t.conversation_id = p_conversation_id AND t.status = 'queued';
  END IF;
  IF NOT v_halt AND NOT v_parked THEN
    RETURN QUERY SELECT true, t.id, t.run_at, t.priority FROM turns t
      WHERE t.conversation_id = p_conversation_id AND t.status = 'queued' ORDER BY t.seq LIMIT 1;
    IF FOUND THEN
      RETURN;
    END IF;
  END IF;
  RETURN QUERY SELECT true, NULL::uuid, NULL::timestamptz, NULL::integer;
END
$$;
