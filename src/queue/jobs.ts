// The one catalog of job payloads (STYLE: one zod schema per job). A job carries a turn
// id and nothing that cannot be rebuilt from Postgres.
import { UnrecoverableError } from 'bullmq';
import { z } from 'zod';

export const TURN_JOB = 'turn';

export const turnJobSchema = z.strictObject({ turnId: z.uuid() });
export type TurnJobData = z.infer<typeof turnJobSchema>;

/** Parses a job's data at the worker boundary; a bad payload fails at once, no retry. */
export function parseTurnJob(name: string, data: unknown): TurnJobData {
  if (name !== TURN_JOB) throw new UnrecoverableError(`unknown job name ${JSON.stringify(name)}`);
  const parsed = turnJobSchema.safeParse(data);
  if (!parsed.success) {
    throw new UnrecoverableError(`invalid turn job: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}
