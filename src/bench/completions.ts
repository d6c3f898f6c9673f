// The arrival of BullMQ's 'completed' / 'failed' events of a queue, by job id, timed on
// arrival in this process: how the turn benchmarks see a turn end (the worker acks a job
// only after its commit).
import { QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';

const DEFAULT_TIMEOUT_MS = 60_000;

/** Wall-clock milliseconds with sub-ms resolution (comparable with Date.now() and Postgres now()). */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

export interface Completion {
  /** performance.now() on arrival. */
  at: number;
  /** wallNow() on arrival. */
  wall: number;
  /** The job's return value. */
  value: string;
}

export class Completions {
  private readonly arrived = new Map<string, Completion | Error>();
  private readonly waiters = new Map<string, (r: Completion | Error) => void>();

  private constructor(
    private readonly events: QueueEvents,
    private readonly conn: Redis,
  ) {
    events.on('completed', ({ jobId, returnvalue }) => {
      this.settle(jobId, { at: performance.now(), wall: wallNow(), value: String(returnvalue) });
    });
    events.on('failed', ({ jobId, failedReason }) => this.settle(jobId, new Error(`job ${jobId} failed: ${failedReason}`)));
  }

  static async open(queueName: string, redisUrl: string, prefix?: string): Promise<Completions> {
    const conn = new Redis(redisUrl, { maxRetriesPerRequest: null });
    const events = new QueueEvents(queueName, { connection: conn, blockingTimeout: 1000, ...(prefix ? { prefix } : {}) });
    await events.waitUntilReady();
    return new Completions(events, conn);
  }

  private settle(jobId: string, r: Completion | Error): void {
    const waiter = this.waiters.get(jobId);
    if (waiter) {
      this.waiters.delete(jobId);
      waiter(r);
    } else {
      this.arrived.set(jobId, r);
    }
  }

  /** Resolves on the job's 'completed' event with value 'succeeded'; rejects on anything else or a timeout. */
  wait(jobId: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Completion> {
    return new Promise((resolve, reject) => {
      const done = (r: Completion | Error) => {
        clearTimeout(timer);
        if (r instanceof Error) reject(r);
        else if (r.value !== 'succeeded') reject(new Error(`job ${jobId} ended ${r.value}`));
        else resolve(r);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(jobId);
        reject(new Error(`job ${jobId} did not complete within ${timeoutMs} ms`));
      }, timeoutMs);
      const early = this.arrived.get(jobId);
      if (early) {
        this.arrived.delete(jobId);
        done(early);
      } else {
        this.waiters.set(jobId, done);
      }
    });
  }

  async close(): Promise<void> {
    // QueueEvents does not close a connection it was handed.
    await this.events.close();
    this.conn.disconnect();
  }
}
