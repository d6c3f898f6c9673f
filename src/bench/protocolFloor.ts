// The floor under the turn figures: the least a durable turn can cost on this stack
// (BullMQ on Redis, Postgres through pg) with nothing of agentq around the run. docs/design.md
// asks three durable steps of every turn: it is recorded in Postgres before it is
// dispatched, a worker claims it under a lease with a fencing token, and its result is
// committed before the job is acknowledged. Here each step is one prepared statement in
// autocommit, on a table of six columns, and the run is the same bare fake-CLI spawn the
// baseline makes (a `run` callback):
//   enqueue: INSERT the turn, then BullMQ add (job id = turn id);
//   worker (a BullMQ Worker, concurrency = lanes): UPDATE ... RETURNING the new fencing
//     token (the claim); the run; UPDATE ... WHERE the token still matches (the commit);
//     return → BullMQ acks the job.
// No session lines, events, workspace, retries or logs: what this costs above the bare
// runs, every implementation of the design on this stack costs at least.
import { randomUUID } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';

export interface FloorOptions {
  databaseUrl: string;
  redisUrl: string;
  /** A queue of its own (obliterated on close). */
  queueName: string;
  concurrency: number;
  /** The turn's run: the bare spawn of the fake CLI for this conversation. */
  run(conversationId: string, prompt: string): Promise<void>;
  /** When each step of a turn's job ended (performance.now()), for the per-phase budget. */
  onJob?(prompt: string, at: FloorJobTimes): void;
}

/** performance.now() at the job's start, after its claim, after its run, after its commit. */
export interface FloorJobTimes {
  started: number;
  claimed: number;
  ran: number;
  committed: number;
}

const SCHEMA = `create table if not exists floor_turns (
  id uuid primary key,
  conversation text not null,
  prompt text not null,
  status text not null default 'queued',
  owner text,
  fencing bigint not null default 0
)`;
const INSERT = 'insert into floor_turns (id, conversation, prompt) values ($1, $2, $3)';
const CLAIM = `update floor_turns set status = 'running', owner = $2, fencing = fencing + 1
  where id = $1 and status = 'queued' returning fencing, conversation, prompt`;
const COMMIT = `update floor_turns set status = 'succeeded' where id = $1 and owner = $2 and fencing = $3`;

interface FloorJob {
  turnId: string;
}

export class ProtocolFloor {
  private constructor(
    private readonly pool: pg.Pool,
    private readonly queue: Queue<FloorJob>,
    private readonly worker: Worker<FloorJob>,
    private readonly conns: Redis[],
  ) {}

  static async open(o: FloorOptions): Promise<ProtocolFloor> {
    const pool = new pg.Pool({ connectionString: o.databaseUrl, max: o.concurrency + 2 });
    await pool.query(SCHEMA);
    const queueConn = new Redis(o.redisUrl, { maxRetriesPerRequest: null });
    const workerConn = new Redis(o.redisUrl, { maxRetriesPerRequest: null });
    const queue = new Queue<FloorJob>(o.queueName, { connection: queueConn, defaultJobOptions: { removeOnComplete: true } });
    const workerId = `floor-${randomUUID().slice(0, 8)}`;
    const processJob = async (job: Job<FloorJob>): Promise<string> => {
      const started = performance.now();
      const claimed = await pool.query<{ fencing: string; conversation: string; prompt: string }>({
        name: 'floor_claim',
        text: CLAIM,
        values: [job.data.turnId, workerId],
      });
      const turn = claimed.rows[0];
      if (!turn) return 'not_claimed';
      const claimedAt = performance.now();
      await o.run(turn.conversation, turn.prompt);
      const ran = performance.now();
      const committed = await pool.query({ name: 'floor_commit', text: COMMIT, values: [job.data.turnId, workerId, turn.fencing] });
      o.onJob?.(turn.prompt, { started, claimed: claimedAt, ran, committed: performance.now() });
      return committed.rowCount === 1 ? 'succeeded' : 'stale';
    };
    const worker = new Worker<FloorJob>(o.queueName, processJob, { connection: workerConn, concurrency: o.concurrency });
    await worker.waitUntilReady();
    return new ProtocolFloor(pool, queue, worker, [queueConn, workerConn]);
  }

  /** Records the turn, then dispatches it; returns its id (= the job id). */
  async enqueue(conversationId: string, prompt: string): Promise<string> {
    const turnId = randomUUID();
    await this.pool.query({ name: 'floor_insert', text: INSERT, values: [turnId, conversationId, prompt] });
    await this.queue.add('turn', { turnId }, { jobId: turnId });
    return turnId;
  }

  async close(): Promise<void> {
    await this.worker.close();
    await this.queue.obliterate({ force: true }).catch(() => undefined);
    await this.queue.close();
    for (const c of this.conns) c.disconnect();
    await this.pool.end();
  }
}
