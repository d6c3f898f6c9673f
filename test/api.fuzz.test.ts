// 10,000 generated bad requests against the conversation and turn routes: every answer is
// a 4xx problem (never a 5xx, never a 2xx), nothing is stored or dispatched, and the
// server is still healthy afterwards.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi, type Api } from '../src/api/server.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';

const KEY_A = 'alpha-key-0123456789abcdef';
const KEY_B = 'beta-key-0123456789abcdef';
const MAX_PROMPT = 500;
const BODY_LIMIT = 16 * 1024;
const RUNS = 10_000;

let t: TestAgentq;
let api: Api;
let seededTurn: string;

beforeAll(async () => {
  t = await createTestAgentq({
    AGENTQ_API_KEYS: `${KEY_A}=alpha,${KEY_B}=beta`,
    AGENTQ_API_RATE_LIMIT: '1000000',
    AGENTQ_API_BODY_LIMIT_BYTES: String(BODY_LIMIT),
    AGENTQ_MAX_PROMPT_CHARS: String(MAX_PROMPT),
    AGENTQ_LOG_LEVEL: 'error',
  });
  api = await buildApi(t.config);
  // Something to aim at: a conversation of tenant alpha with a queued turn (and its job).
  seededTurn = (await api.deps.client.enqueueTurn({ conversationId: 'seeded', tenantId: 'alpha', prompt: 'seed' })).turnId;
});
afterAll(async () => {
  await api?.close();
  await t?.cleanup();
});

interface FuzzRequest {
  kind: string;
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';
  url: string;
  headers: Record<string, string>;
  payload?: string;
}

const AUTH = { authorization: `Bearer ${KEY_A}` };
const JSON_AUTH = { ...AUTH, 'content-type': 'application/json' };
const validBody = JSON.stringify({ prompt: 'hello' });
const enc = encodeURIComponent;

// ── pieces ────────────────────────────────────────────────────────────────────────────

/** Printable ASCII plus control characters: what a client can put in a header. */
const headerText = (maxLength: number) =>
  fc.string({ unit: fc.integer({ min: 0x01, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength });

/** Valid requests of the routes under test (alpha's view): the base that other generators break. */
const validRequests: { method: FuzzRequest['method']; url: string; body?: string }[] = [
  { method: 'POST', url: '/v1/conversations/fuzz-target/turns', body: validBody },
  { method: 'GET', url: '/v1/conversations' },
  { method: 'GET', url: '/v1/conversations/seeded' },
  { method: 'GET', url: '/v1/conversations/seeded/transcript' },
  { method: 'DELETE', url: '/v1/conversations/seeded' },
  { method: 'GET', url: '/v1/turns/SEEDED_TURN' },
  { method: 'POST', url: '/v1/turns/SEEDED_TURN/cancel' },
];

/** A conversation id that breaks at least one rule of parseConversationId. */
const badConversationId = fc.oneof(
  fc
    .tuple(
      fc.stringMatching(/^[a-z0-9-]{0,20}$/),
      fc.constantFrom('/', '\\', '..', '\u0000', '\n', '\t', '\u007f', ' ', '%', '#', '?', 'é', '😀', '"', "'", '<', '*', '|', '$'),
      fc.stringMatching(/^[a-z0-9-]{0,20}$/),
    )
    .map(([a, bad, b]) => `${a}${bad}${b}`),
  fc.stringMatching(/^[a-z0-9]{0,20}$/).map((s) => `.${s}`),
  fc.integer({ min: 129, max: 600 }).map((n) => 'x'.repeat(n)),
  fc.constant(''),
  fc.constantFrom('..', '.', '../../etc/passwd', '..%2F..%2Fetc', '%00', 'a%2Fb'),
);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;
const badTurnId = fc.oneof(
  fc.string({ maxLength: 60 }).filter((s) => !UUID.test(s)),
  fc.uuid().map((u) => `${u}x`),
  fc.uuid().map((u) => u.replace(/-/g, '')),
  fc.uuid().map((u) => `../${u}`),
);

const wrongType = fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 2 }));

const BODY_KEYS = new Set(['prompt', 'options', 'priority', 'delayMs', 'haltOnFailure']);

/** A POST body that breaks the turn input schema in one or more ways. */
const badTurnBody: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant({}),
  wrongType.map((prompt) => ({ prompt })),
  fc.constant({ prompt: '' }),
  fc.integer({ min: MAX_PROMPT + 1, max: MAX_PROMPT + 200 }).map((n) => ({ prompt: 'p'.repeat(n) })),
  fc.string({ maxLength: 20 }).map((s) => ({ prompt: `${s}\u0000${s}` })),
  fc.oneof(fc.integer(), fc.string({ maxLength: 5 }), fc.constant(null), fc.array(fc.integer(), { maxLength: 2 })).map((options) => ({ prompt: 'x', options })),
  fc.oneof(
    fc.record({ maxTurns: fc.oneof(fc.integer({ max: 0 }), fc.string({ maxLength: 4 }), fc.double({ min: 1.1, max: 9.9, noNaN: true })) }),
    fc.record({ model: wrongType }),
    fc.record({ permissionMode: fc.string({ maxLength: 12 }).filter((s) => !['default', 'acceptEdits', 'bypassPermissions', 'plan', 'dontAsk', 'auto', 'delegate'].includes(s)) }),
    fc.record({ cwd: fc.constant('/etc') }),
    fc.record({ resume: fc.string({ maxLength: 8 }) }),
  ).map((options) => ({ prompt: 'x', options })),
  fc.oneof(fc.integer({ max: -1 }), fc.double({ min: 0.1, max: 10, noNaN: true }).filter((d) => !Number.isInteger(d)), fc.integer({ min: 2_097_152 }), fc.string({ maxLength: 4 })).map((priority) => ({ prompt: 'x', priority })),
  fc.oneof(fc.integer({ max: -1 }), fc.string({ maxLength: 4 }), fc.constant(1e15), fc.constant(0.5)).map((delayMs) => ({ prompt: 'x', delayMs })),
  fc.oneof(fc.integer(), fc.string({ maxLength: 4 }), fc.constant(null)).map((haltOnFailure) => ({ prompt: 'x', haltOnFailure })),
  fc
    .tuple(fc.string({ minLength: 1, maxLength: 12 }).filter((k) => !BODY_KEYS.has(k) && k !== '__proto__'), fc.jsonValue({ maxDepth: 1 }))
    .map(([k, v]) => ({ prompt: 'x', [k]: v })),
  fc.constantFrom('tenantId', 'conversationId', 'idempotencyKey', 'source').map((k) => ({ prompt: 'x', [k]: k === 'source' ? 'cli' : 'other' })),
  fc.oneof(fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 3 }), fc.string({ maxLength: 10 }), fc.integer(), fc.constant(null), fc.boolean()),
);

/** Bytes labelled JSON that do not parse. */
const badJson = fc
  .oneof(
    fc.jsonValue({ maxDepth: 2 }).chain((v) => {
      const s = JSON.stringify(v) ?? 'null';
      return fc.integer({ min: 0, max: Math.max(0, s.length - 1) }).map((n) => s.slice(0, n));
    }),
    fc.string({ maxLength: 40 }),
    fc.constantFrom('{', '{"prompt":', "{'prompt': 'x'}", '{"prompt": "x",}', 'undefined', 'NaN', '{"__proto__": {"a": 1}, "prompt": "x"}', '{"constructor": {"prototype": {}}, "prompt": "x"}'),
  )
  .filter((s) => {
    if (s.includes('__proto__') || s.includes('constructor')) return true; // refused by the parser on purpose
    try {
      JSON.parse(s);
      return false;
    } catch {
      return true;
    }
  });

const KEY_NAMES = new Set(['c', 's', 'l', 't', 'a', 'q']);
/** A cursor this API cannot have handed out. */
const badCursor = fc.oneof(
  fc.string({ minLength: 1, maxLength: 40 }).filter((s) => !/^[A-Za-z0-9_-]+$/.test(s)),
  fc.uint8Array({ minLength: 1, maxLength: 30 }).map((b) => Buffer.from(b).toString('base64url')).filter((s) => {
    try {
      JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
      return false;
    } catch {
      return true;
    }
  }),
  fc
    .jsonValue({ maxDepth: 2 })
    .filter((v) => !(v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).every((k) => KEY_NAMES.has(k))))
    .map((v) => Buffer.from(JSON.stringify(v)).toString('base64url')),
  fc.oneof(fc.integer(), fc.constant(true), fc.constant(null)).map((c) => Buffer.from(JSON.stringify({ c })).toString('base64url')),
  fc.constantFrom({ s: '../x', l: 1 }, { s: 'ok', l: -1 }, { t: 0, a: 0, q: 0 }, { t: 1, a: 1 }, { t: 1.5, a: 0, q: 0 }, { c: '..' }, { c: 'ok', x: 1 }).map((v) =>
    Buffer.from(JSON.stringify(v)).toString('base64url'),
  ),
  fc.integer({ min: 2049, max: 3000 }).map((n) => 'A'.repeat(n)),
);

const badLimit = fc.oneof(
  fc.constantFrom('0', '501', '-1', '1.5', '1e2', 'ten', '', ' 5', '0x10', '99999', 'limit=5'),
  fc.integer({ min: 501, max: 10_000_000 }).map(String),
  fc.integer({ max: 0 }).map(String),
);

const QUERY_KEYS = new Set(['status', 'limit', 'cursor']);

/** A query string that breaks the paging parameters of `path`. */
function badQuery(listing: boolean): fc.Arbitrary<string> {
  const options: fc.Arbitrary<string>[] = [
    badCursor.map((c) => `cursor=${enc(c)}`),
    fc.constant('cursor='),
    badLimit.map((l) => `limit=${enc(l)}`),
    fc.tuple(fc.integer({ min: 1, max: 500 }), fc.integer({ min: 1, max: 500 })).map(([a, b]) => `limit=${a}&limit=${b}`),
    fc
      .tuple(fc.stringMatching(/^[a-zA-Z_]{1,10}$/).filter((k) => !QUERY_KEYS.has(k)), fc.string({ maxLength: 8 }))
      .map(([k, v]) => `${k}=${enc(v)}`),
  ];
  if (listing) {
    options.push(fc.string({ maxLength: 12 }).filter((s) => !['idle', 'queued', 'running'].includes(s)).map((s) => `status=${enc(s)}`));
    options.push(fc.constant('status=idle&status=queued'));
  } else {
    options.push(fc.constant('status=idle'));
  }
  return fc.oneof(...options);
}

// ── request generators, by what they break ────────────────────────────────────────────

const badAuthRequest: fc.Arbitrary<FuzzRequest> = fc
  .tuple(
    fc.constantFrom(...validRequests),
    fc.oneof(
      fc.constant(undefined),
      fc.constant(''),
      fc.constant(KEY_A),
      fc.constant(`Basic ${KEY_A}`),
      fc.constant(`Bearer ${KEY_A}x`),
      fc.constant(`Bearer ${KEY_A.slice(0, -1)}`),
      fc.constant(`Bearer ${KEY_A} ${KEY_B}`),
      fc.constant('Bearer'),
      headerText(80).filter((s) => s.trim() !== `Bearer ${KEY_A}` && s.trim() !== `Bearer ${KEY_B}` && !new RegExp(`^bearer\\s+(${KEY_A}|${KEY_B})\\s*$`, 'i').test(s)).map((s) => `Bearer ${s}`),
      headerText(80),
    ),
  )
  .map(([r, authorization]) => ({
    kind: 'auth',
    method: r.method,
    url: r.url,
    headers: { ...(authorization !== undefined ? { authorization } : {}), ...(r.body ? { 'content-type': 'application/json' } : {}) },
    ...(r.body ? { payload: r.body } : {}),
  }));

const badBodyRequest: fc.Arbitrary<FuzzRequest> = badTurnBody.map((body) => ({
  kind: 'body',
  method: 'POST',
  url: '/v1/conversations/fuzz-target/turns',
  headers: JSON_AUTH,
  payload: JSON.stringify(body),
}));

const oversizedRequest: fc.Arbitrary<FuzzRequest> = fc.integer({ min: BODY_LIMIT + 1, max: BODY_LIMIT * 2 }).map((n) => ({
  kind: 'oversized',
  method: 'POST',
  url: '/v1/conversations/fuzz-target/turns',
  headers: JSON_AUTH,
  payload: JSON.stringify({ prompt: 'y'.repeat(n) }),
}));

const badIdRequest: fc.Arbitrary<FuzzRequest> = fc
  .tuple(badConversationId, fc.constantFrom('turns', 'get', 'transcript', 'delete'), fc.boolean())
  .map(([id, route, encode]) => {
    // Unencoded, a / stays a path separator; everything else is encoded as a client would.
    const seg = encode ? enc(id) : id.split('/').map(enc).join('/');
    switch (route) {
      case 'turns':
        return { kind: 'id', method: 'POST' as const, url: `/v1/conversations/${seg}/turns`, headers: JSON_AUTH, payload: validBody };
      case 'get':
        return { kind: 'id', method: 'GET' as const, url: `/v1/conversations/${seg}`, headers: AUTH };
      case 'transcript':
        return { kind: 'id', method: 'GET' as const, url: `/v1/conversations/${seg}/transcript`, headers: AUTH };
      default:
        return { kind: 'id', method: 'DELETE' as const, url: `/v1/conversations/${seg}`, headers: AUTH };
    }
  });

const badTurnIdRequest: fc.Arbitrary<FuzzRequest> = fc
  .tuple(fc.oneof(badTurnId, fc.uuid()), fc.boolean())
  .filter(([id]) => id !== seededTurn)
  .map(([id, cancel]) => ({
    kind: 'turn-id',
    method: cancel ? ('POST' as const) : ('GET' as const),
    url: `/v1/turns/${enc(id)}${cancel ? '/cancel' : ''}`,
    headers: AUTH,
  }));

const badJsonRequest: fc.Arbitrary<FuzzRequest> = badJson.map((payload) => ({
  kind: 'json',
  method: 'POST',
  url: '/v1/conversations/fuzz-target/turns',
  headers: JSON_AUTH,
  payload,
}));

const wrongMethodRequest: fc.Arbitrary<FuzzRequest> = fc
  .constantFrom<[FuzzRequest['method'], string]>(
    ['PUT', '/v1/conversations/seeded'],
    ['PATCH', '/v1/conversations/seeded'],
    ['POST', '/v1/conversations/seeded'],
    ['PUT', '/v1/conversations'],
    ['DELETE', '/v1/conversations'],
    ['POST', '/v1/conversations'],
    ['GET', '/v1/conversations/seeded/turns'],
    ['PUT', '/v1/conversations/seeded/turns'],
    ['DELETE', '/v1/conversations/seeded/transcript'],
    ['POST', '/v1/conversations/seeded/transcript'],
    ['DELETE', '/v1/turns/SEEDED_TURN'],
    ['PUT', '/v1/turns/SEEDED_TURN'],
    ['PATCH', '/v1/turns/SEEDED_TURN'],
    ['GET', '/v1/turns/SEEDED_TURN/cancel'],
    ['DELETE', '/v1/turns/SEEDED_TURN/cancel'],
    ['OPTIONS', '/v1/conversations'],
    ['GET', '/v1/turns'],
    ['GET', '/v1'],
    ['GET', '/v1/conversations/seeded/turns/extra'],
  )
  .map(([method, url]) => ({ kind: 'method', method, url, headers: JSON_AUTH, payload: validBody }));

const badPagingRequest: fc.Arbitrary<FuzzRequest> = fc.boolean().chain((listing) =>
  badQuery(listing).map((q) => ({
    kind: 'paging',
    method: 'GET' as const,
    url: `${listing ? '/v1/conversations' : '/v1/conversations/seeded/transcript'}?${q}`,
    headers: AUTH,
  })),
);

const badHeaderRequest: fc.Arbitrary<FuzzRequest> = fc.oneof(
  fc
    .oneof(
      fc.constant(''),
      fc.integer({ min: 201, max: 400 }).map((n) => 'k'.repeat(n)),
      fc
        .tuple(headerText(10), fc.integer({ min: 0x01, max: 0x1f }), headerText(10))
        .map(([a, c, b]) => `${a}${String.fromCharCode(c)}${b}`),
      fc.constant('\u007f'),
    )
    .map((key) => ({ kind: 'idempotency', method: 'POST' as const, url: '/v1/conversations/fuzz-target/turns', headers: { ...JSON_AUTH, 'idempotency-key': key }, payload: validBody })),
  fc
    .constantFrom('text/plain', 'text/html', 'application/xml', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/octet-stream', 'image/png', 'application/jsonx', 'json')
    .map((type) => ({ kind: 'content-type', method: 'POST' as const, url: '/v1/conversations/fuzz-target/turns', headers: { ...AUTH, 'content-type': type }, payload: validBody })),
  fc.constant({ kind: 'no-body', method: 'POST' as const, url: '/v1/conversations/fuzz-target/turns', headers: AUTH }),
);

const crossTenantRequest: fc.Arbitrary<FuzzRequest> = fc
  .constantFrom(...validRequests.filter((r) => !(r.method === 'POST' && r.url.endsWith('/turns')) && r.url !== '/v1/conversations'))
  .map((r) => ({ kind: 'tenant', method: r.method, url: r.url, headers: { authorization: `Bearer ${KEY_B}` } }));

const badRequest = fc.oneof(
  badAuthRequest,
  badBodyRequest,
  oversizedRequest,
  badIdRequest,
  badTurnIdRequest,
  badJsonRequest,
  wrongMethodRequest,
  badPagingRequest,
  badHeaderRequest,
  crossTenantRequest,
);

// ── the property ──────────────────────────────────────────────────────────────────────

const TABLES = ['conversations', 'turns', 'turn_events', 'sessions', 'session_chunks', 'workspaces'] as const;

async function snapshot(): Promise<{ rows: Record<string, number>; jobs: string[] }> {
  const rows: Record<string, number> = {};
  for (const table of TABLES) {
    const r = await api.deps.client.db.$client.query<{ n: string }>(`select count(*) as n from ${table}`);
    rows[table] = Number(r.rows[0]!.n);
  }
  const jobs = await api.deps.client.queue.getJobs(['wait', 'delayed', 'prioritized', 'active', 'completed', 'failed', 'waiting-children']);
  return { rows, jobs: jobs.map((j) => j.id!).sort() };
}

describe('the API under 10,000 bad requests', () => {
  it('answers every one with a 4xx problem, stores nothing, and stays healthy', async () => {
    const before = await snapshot();
    expect(before.jobs).toEqual([seededTurn]);
    const kinds = new Map<string, Map<number, number>>();
    await fc.assert(
      fc.asyncProperty(badRequest, async (req) => {
        const url = req.url.replace(/SEEDED_TURN/g, seededTurn);
        const res = await api.app.inject({ method: req.method, url, headers: req.headers, ...(req.payload !== undefined ? { payload: req.payload } : {}) });
        const byStatus = kinds.get(req.kind) ?? new Map<number, number>();
        byStatus.set(res.statusCode, (byStatus.get(res.statusCode) ?? 0) + 1);
        kinds.set(req.kind, byStatus);
        const what = `${req.method} ${url} ${JSON.stringify(req.headers)} ${req.payload?.slice(0, 200) ?? ''} → ${res.statusCode} ${res.body.slice(0, 300)}`;
        expect(res.statusCode, what).toBeGreaterThanOrEqual(400);
        expect(res.statusCode, what).toBeLessThan(500);
        expect(res.headers['content-type'], what).toContain('application/problem+json');
        expect(JSON.parse(res.body).status, what).toBe(res.statusCode);
      }),
      { numRuns: RUNS },
    );
    // Every kind of bad request was tried, and answered as expected.
    const summary = Object.fromEntries([...kinds].map(([k, m]) => [k, Object.fromEntries(m)]));
    expect(Object.keys(summary).sort()).toEqual(
      ['auth', 'body', 'content-type', 'id', 'idempotency', 'json', 'method', 'no-body', 'oversized', 'paging', 'tenant', 'turn-id'].sort(),
    );
    expect(Object.keys(summary.auth!)).toEqual(['401']);
    expect(Object.keys(summary.tenant!)).toEqual(['404']);
    expect(Object.keys(summary.oversized!)).toEqual(['413']);
    expect(Object.keys(summary['content-type']!)).toEqual(['415']);
    for (const kind of ['body', 'json', 'idempotency', 'paging', 'no-body']) expect(Object.keys(summary[kind]!), kind).toEqual(['400']);

    expect(await snapshot()).toEqual(before);
    expect((await api.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    const ok = await api.app.inject({ method: 'GET', url: '/v1/conversations/seeded', headers: AUTH });
    expect(ok.statusCode).toBe(200);
    expect(JSON.parse(ok.body).turns).toHaveLength(1);
  });
});
