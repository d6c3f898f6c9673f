-- agentq_row_json (0012) is STABLE, not IMMUTABLE: to_jsonb of a timestamp follows the
-- session's TimeZone setting. Migrations are append-only, so it is redefined here.
CREATE OR REPLACE FUNCTION agentq_row_json(r anyelement, cost numeric) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT to_jsonb(r) || jsonb_build_object('cost_usd', cost::text)
$$;
