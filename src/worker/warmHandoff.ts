// Routing a turn to the worker that keeps its conversation warm. BullMQ hands a turn's job
// to any worker; when its claim finds the conversation warm-held by another worker, it
// asks that worker over Redis pub/sub (one request channel per worker) to run the turn on
// its CLI process. The owner answers at once: `accepted` (it claims and runs the turn
// itself; the asking worker delays its job, which completes once a later delivery finds
// the turn committed) or `declined`. No listener, or no answer within the timeout (the
// owner is dead, frozen or overloaded), and the asking worker steals the warm lease and
// runs the turn cold: a turn never waits on a warm worker longer than that timeout.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { QueueRef } from '../live/keys.js';

export type HandoffAnswer = 'accepted' | 'declined' | 'no_answer';

function requestChannel(queue: QueueRef, workerId: string): string {
  return `${queue.queuePrefix}:${queue.queueName}:agentq:warm:${workerId}`;
}

function replyChannel(queue: QueueRef, workerId: string): string {
  return `${queue.queuePrefix}:${queue.queueName}:agentq:warm-reply:${workerId}`;
}

const requestSchema = z.object({ requestId: z.string(), turnId: z.string(), conversationId: z.string(), from: z.string() });
const replySchema = z.object({ requestId: z.string(), answer: z.enum(['accepted', 'declined']) });

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export class WarmHandoff {
  private readonly pending = new Map<string, (a: HandoffAnswer) => void>();

  private constructor(
    private readonly queue: QueueRef,
    private readonly workerId: string,
    private readonly subscriber: Redis,
    private readonly publisher: Redis,
  ) {}

  /**
   * Listens for requests to this worker (`onRequest` decides: true = it takes the turn) and
   * for answers to its own. `subscriber` is a connection of its own (subscribe mode).
   */
  static async start(
    queue: QueueRef,
    workerId: string,
    subscriber: Redis,
    publisher: Redis,
    onRequest: (turnId: string, conversationId: string) => boolean,
    log: Logger,
  ): Promise<WarmHandoff> {
    const h = new WarmHandoff(queue, workerId, subscriber, publisher);
    const mine = requestChannel(queue, workerId);
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === mine) {
        const req = requestSchema.safeParse(parse(message));
        if (!req.success) return;
        let answer: 'accepted' | 'declined' = 'declined';
        try {
          answer = onRequest(req.data.turnId, req.data.conversationId) ? 'accepted' : 'declined';
        } catch (err) {
          log.warn({ err }, 'a warm handoff request failed');
        }
        void publisher
          .publish(replyChannel(queue, req.data.from), JSON.stringify({ requestId: req.data.requestId, answer }))
          .catch((err: unknown) => log.warn({ err }, 'answering a warm handoff failed'));
      } else if (channel === replyChannel(queue, workerId)) {
        const reply = replySchema.safeParse(parse(message));
        if (reply.success) h.pending.get(reply.data.requestId)?.(reply.data.answer);
      }
    });
    await subscriber.subscribe(mine, replyChannel(queue, workerId));
    return h;
  }

  /** Asks `owner` to run the turn on its warm process. */
  ask(owner: string, turnId: string, conversationId: string, timeoutMs: number): Promise<HandoffAnswer> {
    const requestId = randomUUID();
    return new Promise<HandoffAnswer>((resolve) => {
      const settle = (a: HandoffAnswer) => {
        clearTimeout(timer);
        this.pending.delete(requestId);
        resolve(a);
      };
      const timer = setTimeout(() => settle('no_answer'), timeoutMs);
      this.pending.set(requestId, settle);
      this.publisher.publish(requestChannel(this.queue, owner), JSON.stringify({ requestId, turnId, conversationId, from: this.workerId })).then(
        // Nobody subscribed: the owner is gone, no need to wait.
        (listeners) => listeners === 0 && settle('no_answer'),
        () => settle('no_answer'),
      );
    });
  }

  close(): void {
    for (const settle of [...this.pending.values()]) settle('no_answer');
    this.subscriber.disconnect();
  }
}
