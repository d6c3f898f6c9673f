// A local stand-in for the Anthropic Messages API, good enough for the real Claude Code
// CLI to run whole sessions against it (contract tests, offline demo). It records every
// request, answers conversation requests from a script (or from the conversation itself,
// see script.ts), and streams like the real API (see sse.ts). node:http only.
import http from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  errorBody,
  estimateInputTokens,
  estimateOutputTokens,
  isMessagesRequest,
  type AssistantMessage,
  type ContentBlock,
  type MessagesRequest,
} from './anthropic.js';
import { auxiliaryText, classifyMessagesRequest } from './classify.js';
import { defaultReply, replyKind, type MockReply, type MockScript, type ToolUseSpec } from './script.js';
import { encodeSseEvent, messageStartEvent, messageToSseEvents, pingEvent } from './sse.js';

// One import site for users of the mock: the reply and request types live next to the logic.
export type { MockReply, MockScript, ToolUseSpec } from './script.js';
export type { MessagesRequest, ApiMessage, ContentBlock } from './anthropic.js';

/** Where the CLI checks, once per process start, that the base URL answers. */
const PROBE_PATHS = new Set(['/', '/api/hello']);

/** What a recorded request was, as the mock routed it. */
export type RecordedKind =
  | 'probe' // the CLI checks the base URL is reachable: HEAD / (2.1.197), HEAD /api/hello (2.1.332)
  | 'main' // a conversation turn: answered from the script
  | 'auxiliary' // a side call of the CLI (see classify.ts): short default answer, script untouched
  | 'count_tokens'
  | 'invalid' // unparseable body for /v1/messages: 400
  | 'unknown'; // any other path: 404

export interface RecordedRequest {
  method: string;
  /** Path without the query string (the CLI calls `/v1/messages?beta=true`). */
  path: string;
  /** Path with the query string, as received. */
  url: string;
  headers: IncomingHttpHeaders;
  /** Parsed JSON body of `/v1/messages` and `/v1/messages/count_tokens` requests. */
  body?: MessagesRequest;
  rawBody: string;
  /** Date.now() when the body had been received. */
  time: number;
  kind: RecordedKind;
  /** For main requests: 0-based position among main requests (the script index). */
  index?: number;
  /** HTTP status the mock answered with (set when headers are sent). */
  status?: number;
  /** Date.now() when the response was completely written (the mock's own time is `finishedAt - time`). */
  finishedAt?: number;
}

export interface MockModelOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Replies for main requests in order, or a function; when none applies: the default reply. */
  script?: MockScript;
  /** Pause between streamed deltas, to make streaming observable. Default 0. */
  textDelayMs?: number;
  /** Called for each request once it is recorded (before it is answered); e.g. logging. */
  onRequest?: (rec: RecordedRequest) => void;
  /** Called for each request once its response is completely written (`finishedAt` set). */
  onFinished?: (rec: RecordedRequest) => void;
  /**
   * Report estimated token counts in `usage` (as the real API would). Default false: zero
   * tokens, so the CLI, which prices a turn by its tokens, reports a mock turn as $0.
   */
  estimateUsage?: boolean;
}

export interface MockModel {
  url: string;
  port: number;
  /** Every request received, in arrival order (including probes and 404s). */
  requests: RecordedRequest[];
  /** Only the main conversation requests (the ones that consume the script). */
  mainRequests(): RecordedRequest[];
  /** Append replies to the script queue (consumed before a script function is asked). */
  enqueue(...replies: MockReply[]): void;
  /** Forget recorded requests and queued replies; main-request numbering restarts at 0. */
  reset(): void;
  /** Stop listening, cut stalled and in-flight responses, close keep-alive sockets. */
  close(): Promise<void>;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startMockModel(opts: MockModelOptions = {}): Promise<MockModel> {
  const host = opts.host ?? '127.0.0.1';
  const textDelayMs = opts.textDelayMs ?? 0;
  const scriptFn = typeof opts.script === 'function' ? opts.script : undefined;
  let queue: MockReply[] = Array.isArray(opts.script) ? [...opts.script] : [];
  // Mutated in place (never replaced) so callers may hold on to `mock.requests`.
  const requests: RecordedRequest[] = [];
  let mainCount = 0;
  let idCount = 0;
  // Aborted by close(): ends delays and stalls so no response outlives the mock.
  const closing = new AbortController();
  const inFlight = new Set<ServerResponse>();

  const nextId = (prefix: string): string => `${prefix}${String(++idCount).padStart(6, '0')}`;

  async function pickReply(body: MessagesRequest, index: number): Promise<MockReply> {
    const queued = queue.shift();
    if (queued) return queued;
    if (scriptFn) {
      const r = await scriptFn(body, index);
      if (r) return r;
    }
    return defaultReply(body);
  }

  function sendJson(res: ServerResponse, rec: RecordedRequest, status: number, value: unknown, requestId: string): void {
    rec.status = status;
    const text = JSON.stringify(value);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      'request-id': requestId,
    });
    res.end(text);
  }

  function buildMessage(body: MessagesRequest, reply: { text?: string; toolUse?: ToolUseSpec | ToolUseSpec[] }): AssistantMessage {
    const content: ContentBlock[] = [];
    if (reply.text !== undefined) content.push({ type: 'text', text: reply.text });
    const tools = reply.toolUse === undefined ? [] : Array.isArray(reply.toolUse) ? reply.toolUse : [reply.toolUse];
    for (const t of tools) content.push({ type: 'tool_use', id: t.id ?? nextId('toolu_mock'), name: t.name, input: t.input });
    return {
      id: nextId('msg_mock'),
      type: 'message',
      role: 'assistant',
      model: body.model,
      content,
      stop_reason: tools.length > 0 ? 'tool_use' : 'end_turn',
      stop_sequence: null,
      usage: {
        input_tokens: opts.estimateUsage ? estimateInputTokens(body) : 0,
        output_tokens: opts.estimateUsage ? estimateOutputTokens(content) : 0,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
      },
    };
  }

  async function answer(
    res: ServerResponse,
    rec: RecordedRequest,
    body: MessagesRequest,
    reply: MockReply,
    requestId: string,
    signal: AbortSignal,
  ): Promise<void> {
    await sleep(reply.delayMs ?? 0, signal);
    if (signal.aborted) return;
    const kind = replyKind(reply);
    if (kind === 'delay') return answer(res, rec, body, defaultReply(body), requestId, signal);
    if ('error' in reply) {
      const { status, type, message } = reply.error;
      sendJson(res, rec, status, errorBody(status, type, message, requestId), requestId);
      return;
    }
    const message = buildMessage(body, reply as { text?: string; toolUse?: ToolUseSpec | ToolUseSpec[] });
    if ('stall' in reply) {
      // Headers (and message_start when streaming) go out; the end never does.
      rec.status = 200;
      if (body.stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'request-id': requestId });
        res.write(encodeSseEvent(messageStartEvent(message)) + encodeSseEvent(pingEvent));
      }
      await new Promise<void>((resolve) => {
        if (signal.aborted) return resolve();
        signal.addEventListener('abort', () => resolve(), { once: true });
      });
      return;
    }
    if (!body.stream) {
      sendJson(res, rec, 200, message, requestId);
      return;
    }
    rec.status = 200;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'request-id': requestId });
    for (const e of messageToSseEvents(message)) {
      if (e.event === 'content_block_delta' && textDelayMs > 0) await sleep(textDelayMs, signal);
      if (signal.aborted) return;
      res.write(encodeSseEvent(e));
    }
    res.end();
  }

  /** Route a request: its kind, and for messages requests the parsed body. */
  function route(method: string, path: string, rawBody: string): { kind: RecordedKind; body?: MessagesRequest } {
    if ((method === 'HEAD' || method === 'GET') && PROBE_PATHS.has(path)) return { kind: 'probe' };
    if (method !== 'POST' || (path !== '/v1/messages' && path !== '/v1/messages/count_tokens')) return { kind: 'unknown' };
    let parsed: unknown;
    try {
      parsed = JSON.parse(rawBody);
    } catch {
      parsed = undefined;
    }
    if (!isMessagesRequest(parsed)) return { kind: 'invalid' };
    if (path === '/v1/messages/count_tokens') return { kind: 'count_tokens', body: parsed };
    return { kind: classifyMessagesRequest(parsed), body: parsed };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawBody = await readBody(req);
    const url = req.url ?? '/';
    const path = url.split('?')[0] ?? '/';
    const method = req.method ?? 'GET';
    const { kind, body } = route(method, path, rawBody);
    const rec: RecordedRequest = { method, path, url, headers: req.headers, rawBody, time: Date.now(), kind };
    if (body) rec.body = body;
    if (kind === 'main') rec.index = mainCount++;
    requests.push(rec);
    res.once('finish', () => {
      rec.finishedAt = Date.now();
      opts.onFinished?.(rec);
    });
    opts.onRequest?.(rec);
    const requestId = nextId('req_mock');

    switch (kind) {
      case 'probe':
        rec.status = 200;
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(method === 'GET' ? 'mock anthropic api\n' : undefined);
        return;
      case 'unknown':
        sendJson(res, rec, 404, errorBody(404, 'not_found_error', `mock: no route for ${method} ${path}`, requestId), requestId);
        return;
      case 'invalid':
        sendJson(res, rec, 400, errorBody(400, 'invalid_request_error', 'mock: body must be JSON with model and messages', requestId), requestId);
        return;
      case 'count_tokens':
        sendJson(res, rec, 200, { input_tokens: body ? estimateInputTokens(body) : 0 }, requestId);
        return;
      case 'main':
      case 'auxiliary':
        break; // answered below
    }
    if (!body) return; // unreachable: main and auxiliary requests always have a body

    // Cut this response when the client disconnects or the mock closes.
    const abort = new AbortController();
    const onClose = (): void => abort.abort();
    res.on('close', onClose);
    closing.signal.addEventListener('abort', onClose, { once: true });
    inFlight.add(res);
    try {
      // Only main requests consume the script; auxiliary ones get a short fixed answer.
      const reply: MockReply = kind === 'main' ? await pickReply(body, rec.index ?? 0) : { text: auxiliaryText(body) };
      await answer(res, rec, body, reply, requestId, abort.signal);
    } finally {
      closing.signal.removeEventListener('abort', onClose);
      inFlight.delete(res);
      if (abort.signal.aborted && !res.writableEnded) res.destroy();
    }
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      // A bug in the mock or a script function: answer 500 so the failure is visible.
      if (!res.headersSent) {
        const text = JSON.stringify(errorBody(500, 'api_error', `mock failure: ${String(err)}`));
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(text);
      } else {
        res.destroy();
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let closed: Promise<void> | undefined;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  const model: MockModel = {
    url: `http://${urlHost}:${port}`,
    port,
    requests,
    mainRequests: () => requests.filter((r) => r.kind === 'main'),
    enqueue: (...replies) => {
      queue.push(...replies);
    },
    reset: () => {
      requests.length = 0;
      queue = [];
      mainCount = 0;
    },
    close: () => {
      closed ??= new Promise<void>((resolve, reject) => {
        closing.abort();
        for (const res of inFlight) res.destroy();
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
      return closed;
    },
  };
  return model;
}

/** A placeholder key for CLI runs against the mock (the CLI wants one; the mock ignores it). */
export const MOCK_API_KEY = 'sk-agentq-mock-model';

/**
 * A CLI environment pointed at the mock model at `url`: its base URL and a placeholder
 * key, no other credential, no API retries (the mock answers at once or was told to fail).
 */
export function mockCliEnv(env: Readonly<Record<string, string>>, url: string): Record<string, string> {
  const { ANTHROPIC_AUTH_TOKEN: _token, CLAUDE_CODE_OAUTH_TOKEN: _oauth, ANTHROPIC_CUSTOM_HEADERS: _headers, ...rest } = env;
  return { ...rest, ANTHROPIC_BASE_URL: url, ANTHROPIC_API_KEY: MOCK_API_KEY, CLAUDE_CODE_MAX_RETRIES: '0' };
}
