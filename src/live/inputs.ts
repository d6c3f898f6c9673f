// User messages into a running turn (POST /v1/turns/:id/input). The API does not know
// which worker holds a turn, so it publishes the request on a channel every worker
// listens to; the worker whose attempt runs that turn writes the message to the CLI's
// stdin and answers on the reply channel. The API answers 202 only after that
// acknowledgement. No answer within the timeout means no worker holds the turn's CLI
// (between attempts, still preparing, already committing): the caller gets 409 and may
// retry. An acknowledgement lost on its way back is the one case where a message was
// delivered yet reported as not delivered.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { z } from 'zod';
import { inputReplyChannel, inputRequestChannel, type QueueRef } from './keys.js';
import type { LivePublisher } from './publisher.js';

export type InputOutcome =
  | { outcome: 'delivered' }
  /** The worker holds the turn but its CLI takes no input now (not started, or its first result already came). */
  | { outcome: 'refused'; detail: string };

export type InputAnswer = InputOutcome | { outcome: 'no_worker'; detail: string };

/** The attempt side: what a worker can deliver a message to. */
export interface InputTarget {
  acceptInput(text: string): Promise<InputOutcome>;
}

const requestSchema = z.object({ requestId: z.uuid(), turnId: z.string().min(1).max(100), text: z.string() });
const replySchema = z.object({
  requestId: z.string(),
  outcome: z.enum(['delivered', 'refused']),
  detail: z.string().optional(),
});

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The API process's side: one subscriber connection for all replies, opened on first use. */
export class InputRequester {
  private subscriber: Redis | undefined;
  private subscribed: Promise<unknown> | undefined;
  private readonly pending = new Map<string, (answer: InputAnswer) => void>();

  constructor(
    private readonly redisUrl: string,
    private readonly queue: QueueRef,
    /** A command connection to publish requests on. */
    private readonly commands: Redis,
    private readonly log: Logger,
  ) {}

  /** Asks the worker holding `turnId` to deliver `text`; resolves with its answer or `no_worker` after `timeoutMs`. */
  async deliver(turnId: string, text: string, timeoutMs: number): Promise<InputAnswer> {
    await this.subscribe();
    const requestId = randomUUID();
    return new Promise<InputAnswer>((resolve) => {
      const settle = (answer: InputAnswer) => {
        clearTimeout(timer);
        this.pending.delete(requestId);
        resolve(answer);
      };
      const timer = setTimeout(() => settle({ outcome: 'no_worker', detail: `no worker acknowledged the message within ${timeoutMs} ms` }), timeoutMs);
      this.pending.set(requestId, settle);
      this.commands.publish(inputRequestChannel(this.queue), JSON.stringify({ requestId, turnId, text })).then(
        (listeners) => {
          if (listeners === 0) settle({ outcome: 'no_worker', detail: 'no worker is listening' });
        },
        (err: unknown) => {
          this.log.warn({ err }, 'publishing an input request failed');
          settle({ outcome: 'no_worker', detail: 'the request could not be sent to the workers' });
        },
      );
    });
  }

  close(): void {
    for (const settle of [...this.pending.values()]) settle({ outcome: 'no_worker', detail: 'the API is shutting down' });
    this.subscriber?.disconnect();
  }

  private subscribe(): Promise<unknown> {
    if (!this.subscribed) {
      const sub = new Redis(this.redisUrl, { maxRetriesPerRequest: 1 });
      sub.on('error', () => undefined);
      sub.on('message', (_channel: string, message: string) => {
        const reply = replySchema.safeParse(parseJson(message));
        if (!reply.success) return;
        const { requestId, outcome, detail } = reply.data;
        this.pending.get(requestId)?.(outcome === 'delivered' ? { outcome } : { outcome, detail: detail ?? 'refused' });
      });
      this.subscriber = sub;
      this.subscribed = sub.subscribe(inputReplyChannel(this.queue)).catch((err: unknown) => {
        // Try again on the next request.
        this.subscribed = undefined;
        this.subscriber = undefined;
        sub.disconnect();
        throw err;
      });
    }
    return this.subscribed;
  }
}

/**
 * The worker's side: listens for input requests and answers those for turns it holds
 * (`lookup`); requests for other turns are left to the worker that holds them.
 */
export async function startInputResponder(
  redisUrl: string,
  queue: QueueRef,
  publisher: LivePublisher,
  lookup: (turnId: string) => InputTarget | undefined,
  log: Logger,
): Promise<{ close(): void }> {
  const sub = new Redis(redisUrl, { maxRetriesPerRequest: null });
  sub.on('error', () => undefined);
  sub.on('message', (_channel: string, message: string) => {
    const request = requestSchema.safeParse(parseJson(message));
    if (!request.success) return;
    const { requestId, turnId, text } = request.data;
    const target = lookup(turnId);
    if (!target) return;
    void target
      .acceptInput(text)
      .catch((err: unknown): InputOutcome => {
        log.warn({ err, turnId }, 'delivering a user message failed');
        return { outcome: 'refused', detail: 'the message could not be written to the CLI' };
      })
      .then((answer) => publisher.publish(inputReplyChannel(queue), JSON.stringify({ requestId, ...answer })));
  });
  await sub.subscribe(inputRequestChannel(queue));
  return { close: () => sub.disconnect() };
}
