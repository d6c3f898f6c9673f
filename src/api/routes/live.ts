// The live routes of a turn: its events as Server-Sent Events (stored first, then live;
// see src/live/feed.ts for how the switch has no gap and no duplicate), and user
// messages into its running CLI (see src/live/inputs.ts for the delivery).
import { z } from 'zod';
import { parseEventId, START, type EventCursor } from '../../live/cursor.js';
import { turnFeed } from '../../live/feed.js';
import { InputRequester } from '../../live/inputs.js';
import { liveStreamKey } from '../../live/keys.js';
import { promptSchema } from '../../queue/turnInput.js';
import { formatSse, SSE_HEADERS, SSE_PING, writeSse } from '../../live/sse.js';
import { getTurnHead, type TurnHead } from '../../live/storedEvents.js';
import { conflict, HttpProblem, notFound, problemResponses } from '../problems.js';
import type { ApiApp, ApiDeps } from '../server.js';
import { turnIdSchema } from './turns.js';

/** How long POST /input waits for the worker holding the turn to acknowledge the message. */
const INPUT_ACK_TIMEOUT_MS = 3000;

const turnParams = z.strictObject({ id: turnIdSchema });

export function registerLiveRoutes(app: ApiApp, { config, client, log, streams: reader }: ApiDeps): void {
  const requester = new InputRequester(config.redisUrl, config, client.redis, log);
  app.addHook('onClose', async () => requester.close());
  // Open event streams would keep the server from closing: end them first (clients
  // reconnect, with their Last-Event-ID, to another instance).
  const streams = new Set<AbortController>();
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
    for (const c of streams) c.abort();
  });

  /** The turn, if it exists and belongs to the caller's tenant; another tenant's turn is a 404 too. */
  async function ownTurn(turnId: string, tenant: string): Promise<TurnHead> {
    const head = await getTurnHead(client.db, turnId);
    if (!head || head.tenantId !== tenant) throw notFound(`turn ${turnId}`);
    return head;
  }

  app.get(
    '/v1/turns/:id/events',
    {
      schema: {
        tags: ['turns'],
        summary: "A turn's events as Server-Sent Events: stored first, then live",
        description:
          'text/event-stream. Each event: `id: <attempt>-<seq>`, `event: <type>` (the stream-json type, or `agentq`), ' +
          '`data: <the JSON line>`. Send `Last-Event-ID` to resume after an event. The stream ends after the turn is ' +
          `committed (its final \`result\`) with \`event: end\` and \`data: {"status": ...}\`; \`: ping\` comments every ${config.api.ssePingMs / 1000} s (AGENTQ_API_SSE_PING_MS).`,
        params: turnParams,
        headers: z.object({ 'last-event-id': z.string().max(40).optional() }),
        response: { 200: z.string().describe('text/event-stream'), ...problemResponses(400, 401, 404, 429) },
      },
    },
    async (request, reply) => {
      const turnId = request.params.id;
      await ownTurn(turnId, request.tenant);
      const after = cursorFrom(request.headers['last-event-id']);

      // From here on the response is ours: no error may reach Fastify's handler.
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, SSE_HEADERS);
      res.flushHeaders();
      const controller = new AbortController();
      streams.add(controller);
      res.on('close', () => controller.abort());
      // Proxies drop idle connections (often after 30-60 s); a comment line keeps them open.
      const heartbeat = setInterval(() => {
        if (!res.writableNeedDrain) res.write(SSE_PING);
      }, config.api.ssePingMs);
      try {
        const feed = turnFeed({
          db: client.db,
          reader,
          streamKey: liveStreamKey(config, turnId),
          turnId,
          after,
          signal: controller.signal,
          log,
        });
        for await (const item of feed) {
          if (!(await writeSse(res, formatSse(item)))) break;
        }
      } catch (err) {
        // The client reconnects with its Last-Event-ID and continues where it was.
        if (!controller.signal.aborted) request.log.warn({ err, turnId }, 'event stream failed');
      } finally {
        clearInterval(heartbeat);
        streams.delete(controller);
        controller.abort();
        // On shutdown the connection must not linger as an idle keep-alive socket.
        const socket = res.socket;
        if (closing) res.once('finish', () => socket?.destroy());
        res.end();
      }
    },
  );

  app.post(
    '/v1/turns/:id/input',
    {
      schema: {
        tags: ['turns'],
        summary: 'Send a user message into a running turn (stream-json input)',
        description:
          'The turn must be running and have been enqueued with `options.streamInput: true`. 202 once the worker ' +
          'running the turn has written the message to the CLI; 409 otherwise (not running, no stream input, or no ' +
          'worker acknowledged it within 3 s: retry). The message is recorded as an `agentq` `user_input` event.',
        params: turnParams,
        body: z.strictObject({
          text: promptSchema(config.worker.maxPromptChars),
        }),
        response: { 202: z.object({ turnId: z.string(), delivered: z.literal(true) }), ...problemResponses(400, 401, 404, 409, 429) },
      },
    },
    async (request, reply) => {
      const turnId = request.params.id;
      const turn = await ownTurn(turnId, request.tenant);
      if (turn.status !== 'running') throw conflict(`turn ${turnId} is ${turn.status}: input goes only to a running turn`);
      if (turn.options.streamInput !== true) throw conflict(`turn ${turnId} was not enqueued with options.streamInput: true`);
      const answer = await requester.deliver(turnId, request.body.text, INPUT_ACK_TIMEOUT_MS);
      if (answer.outcome !== 'delivered') throw conflict(`the message was not delivered to turn ${turnId}: ${answer.detail}`);
      return reply.code(202).send({ turnId, delivered: true as const });
    },
  );
}

function cursorFrom(lastEventId: string | undefined): EventCursor {
  if (lastEventId === undefined || lastEventId.trim() === '') return START;
  const cursor = parseEventId(lastEventId);
  if (!cursor) {
    throw new HttpProblem(400, 'Bad Request', 'Last-Event-ID must be an event id of this stream: <attempt>-<seq>', [
      { field: 'headers.last-event-id', message: 'must look like <attempt>-<seq>, e.g. 1-42' },
    ]);
  }
  return cursor;
}
