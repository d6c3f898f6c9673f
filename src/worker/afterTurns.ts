// What a worker does for a turn after its commit, once the turn is acknowledged: keep the
// committed session file and the workspace mark for a next turn here, and remove the
// attempt's run directory. None of it is part of the turn's outcome (Postgres has that),
// so the job is acknowledged first. A next attempt of the same conversation on this worker
// waits for it before it touches the conversation's disk; stop() waits for all of it.
import type { Logger } from 'pino';

export class AfterTurns {
  readonly #pending = new Map<string, Promise<void>>();

  constructor(private readonly log: Logger) {}

  /** Runs `work` after what is pending for the conversation; a failure is logged, never thrown. */
  add(conversationId: string, work: () => Promise<void>): void {
    const previous = this.#pending.get(conversationId) ?? Promise.resolve();
    const done: Promise<void> = previous
      .then(work)
      .catch((err: unknown) => this.log.warn({ err, conversationId }, 'tidying up after a turn failed'))
      .finally(() => {
        if (this.#pending.get(conversationId) === done) this.#pending.delete(conversationId);
      });
    this.#pending.set(conversationId, done);
  }

  /** Settles once nothing is pending for the conversation. */
  async settled(conversationId: string): Promise<void> {
    for (let p = this.#pending.get(conversationId); p !== undefined; p = this.#pending.get(conversationId)) await p;
  }

  /** Settles once nothing is pending at all. */
  async idle(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all(this.#pending.values());
  }
}
