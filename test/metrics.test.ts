// Metrics: a real worker (fake CLI) feeding its own prom-client registry, its /metrics
// endpoint over HTTP, and the API's /metrics (queue depth and turn counts on scrape).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { trace, type Span, type SpanOptions, type Tracer } from '@opentelemetry/api';
import { buildApi, type Api } from '../src/api/server.js';
import { startWorkerTelemetry, type WorkerTelemetry } from '../src/metrics/workerEndpoint.js';
import { tracingObserver } from '../src/metrics/tracing.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { createWorker, type TurnWorker } from '../src/worker/worker.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { waitUntil } from './helpers/processes.js';

let t: TestAgentq;
let client: AgentqClient;
let telemetry: WorkerTelemetry | undefined;
let worker: TurnWorker | undefined;
let api: Api | undefined;

beforeEach(async () => {
  t = await createTestAgentq({ AGENTQ_MAX_ATTEMPTS: '2' });
  client = createClient(t.config);
});
afterEach(async () => {
  await worker?.stop({ graceMs: 0 });
  await telemetry?.close();
  await api?.close();
  worker = telemetry = api = undefined;
  await client.close();
  await t.cleanup();
});

/** The value of one sample of a Prometheus text exposition, or undefined if absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = m[2] ? m[2].split(/,(?=[a-zA-Z_]+=")/) : [];
    if (want.length === have.length && want.every((w) => have.includes(w))) return Number(m[3]);
  }
  return undefined;
}

async function scrapeWorker(): Promise<{ status: number; contentType: string | null; text: string }> {
  const res = await fetch(`http://127.0.0.1:${telemetry!.port}/metrics`);
  return { status: res.status, contentType: res.headers.get('content-type'), text: await res.text() };
}

async function startObservedWorker(): Promise<void> {
  telemetry = await startWorkerTelemetry(t.config, { port: 0, host: '127.0.0.1', processMetrics: false });
  worker = createWorker(t.config, { concurrency: 2, observeAttempt: telemetry.observeAttempt });
  await worker.start();
}

describe('worker metrics', () => {
  it('count turns by status, attempts, CLI outcomes, cost and tokens, and time each phase', async () => {
    await startObservedWorker();
    const ok1 = await client.enqueueTurn({ conversationId: 'm-1', prompt: '#fake {"costUsd":0.25}\nfirst' });
    const ok2 = await client.enqueueTurn({ conversationId: 'm-1', prompt: '#fake {"costUsd":0.5}\nsecond' });
    const rejected = await client.enqueueTurn({ conversationId: 'm-2', prompt: '#fake {"apiError":{"status":400}}\nbad request' });
    // Crashes once; the retry resumes with the continuation prompt (no `#fake` line first) and succeeds.
    const crashy = await client.enqueueTurn({ conversationId: 'm-3', prompt: '#fake {"crash":{"afterInit":true,"exitCode":3}}\ncrash' });
    expect((await client.waitForTurn(ok1.turnId, 20_000)).status).toBe('succeeded');
    expect((await client.waitForTurn(ok2.turnId, 20_000)).status).toBe('succeeded');
    expect((await client.waitForTurn(rejected.turnId, 20_000)).status).toBe('failed');
    expect((await client.waitForTurn(crashy.turnId, 20_000)).status).toBe('succeeded');
    // The job completes just after the commit; the attempt's end is observed then.
    await waitUntil(async () => sample((await scrapeWorker()).text, 'agentq_attempts_total', { result: 'committed' }) === 4, 'four committed attempts');

    const { status, contentType, text } = await scrapeWorker();
    expect(status).toBe(200);
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(text).toMatch(/^# HELP agentq_turns_total /m);
    expect(text).toMatch(/^# TYPE agentq_turn_duration_seconds histogram$/m);

    expect(sample(text, 'agentq_turns_total', { status: 'succeeded' })).toBe(3);
    expect(sample(text, 'agentq_turns_total', { status: 'failed' })).toBe(1);
    expect(sample(text, 'agentq_turns_total', { status: 'cancelled' })).toBe(0);
    expect(sample(text, 'agentq_turn_duration_seconds_count', { status: 'succeeded' })).toBe(3);
    expect(sample(text, 'agentq_turn_duration_seconds_count', { status: 'failed' })).toBe(1);
    expect(sample(text, 'agentq_turn_duration_seconds_sum', { status: 'succeeded' })).toBeGreaterThan(0);

    expect(sample(text, 'agentq_attempts_total', { result: 'committed' })).toBe(4);
    expect(sample(text, 'agentq_attempts_total', { result: 'retry' })).toBe(1);
    expect(sample(text, 'agentq_attempts_total', { result: 'shutdown' })).toBe(0);
    expect(sample(text, 'agentq_turns_in_flight')).toBe(0);

    expect(sample(text, 'agentq_cli_outcomes_total', { outcome: 'success' })).toBe(3);
    expect(sample(text, 'agentq_cli_outcomes_total', { outcome: 'api_error' })).toBe(1);
    expect(sample(text, 'agentq_cli_outcomes_total', { outcome: 'crashed' })).toBe(1);

    // Five attempts claimed and hydrated; four committed.
    expect(sample(text, 'agentq_attempt_phase_duration_seconds_count', { phase: 'claim' })).toBe(5);
    expect(sample(text, 'agentq_attempt_phase_duration_seconds_count', { phase: 'hydrate' })).toBe(5);
    expect(sample(text, 'agentq_attempt_phase_duration_seconds_count', { phase: 'run' })).toBe(5);
    expect(sample(text, 'agentq_attempt_phase_duration_seconds_count', { phase: 'commit' })).toBe(4);

    const stored = await client.db.$client.query<{ input: string; output: string; cost: string }>(
      `select sum((usage->>'input_tokens')::bigint) as input, sum((usage->>'output_tokens')::bigint) as output, sum(cost_usd) as cost from turns`,
    );
    // The crashed attempt reported no cost; the other four runs' costs are on their turns.
    expect(Number(stored.rows[0]!.cost)).toBeGreaterThan(0.75);
    expect(sample(text, 'agentq_cost_usd_total')).toBeCloseTo(Number(stored.rows[0]!.cost), 6);
    expect(Number(stored.rows[0]!.output)).toBeGreaterThan(0);
    expect(sample(text, 'agentq_tokens_total', { kind: 'output' })).toBe(Number(stored.rows[0]!.output));
    expect(sample(text, 'agentq_tokens_total', { kind: 'input' })).toBe(Number(stored.rows[0]!.input));
    // Every metric is prefixed.
    const names = text.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]!);
    expect(names.length).toBeGreaterThan(8);
    expect(names.filter((n) => !n.startsWith('agentq_'))).toEqual([]);
  });

  it('shows a running turn in flight and its job as active, then neither', async () => {
    await startObservedWorker();
    const slow = await client.enqueueTurn({ conversationId: 'm-slow', prompt: '#fake {"delayMs":1500}\nslow' });
    await waitUntil(async () => sample((await scrapeWorker()).text, 'agentq_turns_in_flight') === 1, 'the turn in flight', 10_000);
    const during = (await scrapeWorker()).text;
    expect(sample(during, 'agentq_queue_jobs', { state: 'active' })).toBe(1);
    expect(sample(during, 'agentq_checkpoint_duration_seconds_count')).toBeGreaterThanOrEqual(0);
    expect((await client.waitForTurn(slow.turnId, 20_000)).status).toBe('succeeded');
    await waitUntil(async () => sample((await scrapeWorker()).text, 'agentq_turns_in_flight') === 0, 'nothing in flight', 10_000);
    const after = (await scrapeWorker()).text;
    expect(sample(after, 'agentq_queue_jobs', { state: 'active' })).toBe(0);
    // A 1.5 s turn checkpoints every 200 ms.
    expect(sample(after, 'agentq_checkpoint_duration_seconds_count')).toBeGreaterThan(0);
  });

  it('answers 404 for other paths of the metrics port', async () => {
    telemetry = await startWorkerTelemetry(t.config, { port: 0, host: '127.0.0.1', processMetrics: false });
    const res = await fetch(`http://127.0.0.1:${telemetry.port}/other`);
    expect(res.status).toBe(404);
    await res.text();
  });

  it('records a span per phase under one attempt span when a tracer is given', async () => {
    const spans: { name: string; attributes: Record<string, unknown>; ended: boolean }[] = [];
    const tracer = recordingTracer(spans);
    telemetry = undefined;
    worker = createWorker(t.config, { concurrency: 1, observeAttempt: tracingObserver(tracer) });
    await worker.start();
    const turn = await client.enqueueTurn({ conversationId: 'traced', prompt: 'hello' });
    await client.waitForTurn(turn.turnId, 20_000);
    await waitUntil(() => spans.some((s) => s.name === 'agentq.attempt' && s.ended), 'the attempt span ended');
    const names = spans.map((s) => s.name);
    for (const n of ['agentq.attempt', 'agentq.claim', 'agentq.hydrate', 'agentq.run', 'agentq.commit']) expect(names).toContain(n);
    const root = spans.find((s) => s.name === 'agentq.attempt')!;
    expect(root.attributes).toMatchObject({ 'agentq.turn_id': turn.turnId, 'agentq.conversation_id': 'traced', 'agentq.status': 'succeeded', 'agentq.cli_outcome': 'success' });
    expect(spans.every((s) => s.ended)).toBe(true);
  });
});

describe('API metrics', () => {
  it('GET /metrics shows the queue depth and queued turns without an API key', async () => {
    for (const id of ['q-1', 'q-2', 'q-3']) await client.enqueueTurn({ conversationId: id, prompt: 'waiting' });
    // Behind q-1's head: queued in Postgres, no job yet.
    await client.enqueueTurn({ conversationId: 'q-1', prompt: 'second' });
    api = await buildApi(t.config);
    const res = await api.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(sample(res.body, 'agentq_queue_jobs', { state: 'waiting' })).toBe(3);
    expect(sample(res.body, 'agentq_queue_jobs', { state: 'active' })).toBe(0);
    expect(sample(res.body, 'agentq_turns_current', { status: 'queued' })).toBe(4);
    expect(sample(res.body, 'agentq_turns_current', { status: 'running' })).toBe(0);
    expect(sample(res.body, 'agentq_turns_oldest_due_age_seconds')).toBeGreaterThanOrEqual(0);
    expect(res.body).toMatch(/^agentq_process_cpu_seconds_total /m);

    // Requests are counted by route template once they are answered.
    await api.app.inject({ method: 'GET', url: '/healthz' });
    const again = await api.app.inject({ method: 'GET', url: '/metrics' });
    expect(sample(again.body, 'agentq_http_requests_total', { method: 'GET', route: '/healthz', status: '200' })).toBe(1);
  });
});

/** A minimal Tracer that records what the observer does with its spans. */
function recordingTracer(out: { name: string; attributes: Record<string, unknown>; ended: boolean }[]): Tracer {
  const noop = trace.getTracer('noop');
  const make = (name: string, options?: SpanOptions): Span => {
    const rec = { name, attributes: { ...(options?.attributes ?? {}) } as Record<string, unknown>, ended: false };
    out.push(rec);
    const inner = noop.startSpan(name);
    const span: Span = {
      ...inner,
      spanContext: () => inner.spanContext(),
      setAttribute(k, v) {
        rec.attributes[k] = v;
        return span;
      },
      setAttributes(a) {
        Object.assign(rec.attributes, a);
        return span;
      },
      setStatus: () => span,
      end() {
        rec.ended = true;
      },
      isRecording: () => true,
    } as Span;
    return span;
  };
  return {
    startSpan: (name, options) => make(name, options),
    startActiveSpan: (() => {
      throw new Error('not used');
    }) as Tracer['startActiveSpan'],
  };
}
