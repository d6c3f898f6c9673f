-- The worker's commit call may run as a statement of its own, without BEGIN and COMMIT
-- (src/store/lazyTransaction.ts): Postgres then commits it by itself. agentq_commit_turn
-- (0014) appends and commits the session's lines before agentq_finish_turn finds the fence
-- lost, and only reports that (fenced = false); inside a transaction the caller rolled it
-- all back. Alone, the statement must fail instead, so that none of it is kept: the caller
-- filters the call's row through this function, which raises AQ411 for a lost fence.
CREATE OR REPLACE FUNCTION agentq_fence_held(p_fenced boolean) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF NOT p_fenced THEN
    RAISE EXCEPTION 'the conversation''s lease is no longer this attempt''s' USING ERRCODE = 'AQ411';
  END IF;
  RETURN true;
END
$$;
