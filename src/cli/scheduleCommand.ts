// `agentq schedule add|update|list|remove`: scheduled agents from the command line. Exit codes:
// 0 done, 1 no such schedule / name taken, 2 invalid input (each bad field named).
import type { Command } from 'commander';
import type { Config } from '../config.js';
import { createClient } from '../queue/client.js';
import { ScheduleExistsError, ScheduleInputError } from '../schedules/errors.js';
import { createScheduleQueue } from '../schedules/scheduler.js';
import { createSchedule, getSchedules, removeSchedule, updateSchedule, type ScheduleHandles, type ScheduleView } from '../schedules/service.js';
import type { CliIo } from './main.js';

/** The flags `schedule add` and `schedule update` share. */
interface ScheduleFieldFlags {
  conversation?: string;
  cron?: string;
  tz?: string;
  overlap?: string;
  tenant?: string;
  prompt?: string;
  options?: string;
  json?: boolean;
}

export interface ScheduleAddFlags extends ScheduleFieldFlags {
  disabled?: boolean;
}

export interface ScheduleUpdateFlags extends ScheduleFieldFlags {
  enable?: boolean;
  disable?: boolean;
}

/** Opens a client and the tick queue for one command, and closes both after it. */
async function withHandles<T>(config: Config, io: CliIo, fn: (h: ScheduleHandles) => Promise<T>): Promise<T> {
  const client = createClient(config);
  const queue = createScheduleQueue(config.queueName, client.redis, config.queuePrefix);
  const warn = (message: string, { err }: { err: unknown }) => io.err(`warning: ${message} (${(err as Error).message})`);
  try {
    return await fn({ db: client.db, queue, warn, maxPromptChars: config.worker.maxPromptChars });
  } finally {
    await queue.close().catch(() => undefined);
    await client.close();
  }
}

function describe(v: ScheduleView): string {
  return `${v.tenantId}/${v.name} ${JSON.stringify(v.cron)} ${v.timezone} → ${v.conversationId} overlap=${v.overlap}${v.enabled ? '' : ' (disabled)'} next=${v.nextRunAt ?? '-'} last=${v.lastFiredAt ?? '-'}`;
}

/**
 * `schedule add <name> --conversation <id> --cron <expr> [--tz] [--overlap] [--tenant] (--prompt <text> | -- <prompt words>)`.
 * The prompt comes from `--prompt` or from the words after the name, not both.
 */
export async function scheduleAddCommand(config: Config, io: CliIo, name: string, promptWords: readonly string[], flags: ScheduleAddFlags): Promise<number> {
  const positional = promptWords.join(' ');
  if (flags.prompt !== undefined && positional !== '') {
    io.err('give the prompt either with --prompt or after --, not both');
    return 2;
  }
  const options = parseOptionsFlag(flags.options, io);
  if (options === INVALID) return 2;
  const input = {
    name,
    conversationId: flags.conversation,
    prompt: flags.prompt ?? positional,
    cron: flags.cron,
    ...(flags.tz !== undefined ? { timezone: flags.tz } : {}),
    ...(flags.overlap !== undefined ? { overlap: flags.overlap } : {}),
    ...(flags.tenant !== undefined ? { tenantId: flags.tenant } : {}),
    ...(options !== undefined ? { options } : {}),
    ...(flags.disabled ? { enabled: false } : {}),
  };
  try {
    const view = await withHandles(config, io, (h) => createSchedule(h, input as Parameters<typeof createSchedule>[1]));
    io.out(flags.json ? JSON.stringify(view) : `added ${describe(view)}`);
    return 0;
  } catch (err) {
    if (err instanceof ScheduleInputError) return reportInputError(io, err);
    if (err instanceof ScheduleExistsError) {
      io.err(err.message);
      return 1;
    }
    throw err;
  }
}

const INVALID = Symbol('invalid');

/** `--options <json>` parsed, undefined when absent, INVALID (reported) when not JSON. */
function parseOptionsFlag(text: string | undefined, io: CliIo): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    io.err(`--options must be JSON (got ${JSON.stringify(text)})`);
    return INVALID;
  }
}

/** Names the flag the user typed, not the field behind it; exit code 2. */
function reportInputError(io: CliIo, err: ScheduleInputError): number {
  io.err(`Invalid schedule:\n${err.fields.map((f, i) => `  ${flagOf(f)}: ${err.messages[i] ?? 'is invalid'}`).join('\n')}`);
  return 2;
}

/**
 * `schedule update <name> [--conversation] [--cron] [--tz] [--overlap] [--prompt] [--options] [--enable|--disable] [--tenant]`:
 * only the given fields change. Exit 1 when there is no such schedule, 2 on invalid input.
 */
export async function scheduleUpdateCommand(config: Config, io: CliIo, name: string, flags: ScheduleUpdateFlags): Promise<number> {
  if (flags.enable && flags.disable) {
    io.err('give --enable or --disable, not both');
    return 2;
  }
  const options = parseOptionsFlag(flags.options, io);
  if (options === INVALID) return 2;
  const patch = {
    ...(flags.conversation !== undefined ? { conversationId: flags.conversation } : {}),
    ...(flags.prompt !== undefined ? { prompt: flags.prompt } : {}),
    ...(flags.cron !== undefined ? { cron: flags.cron } : {}),
    ...(flags.tz !== undefined ? { timezone: flags.tz } : {}),
    ...(flags.overlap !== undefined ? { overlap: flags.overlap } : {}),
    ...(options !== undefined ? { options } : {}),
    ...(flags.enable ? { enabled: true } : flags.disable ? { enabled: false } : {}),
  };
  const tenant = flags.tenant ?? 'default';
  try {
    const view = await withHandles(config, io, (h) => updateSchedule(h, tenant, name, patch as Parameters<typeof updateSchedule>[3]));
    if (!view) {
      io.err(`no schedule ${JSON.stringify(name)} for tenant ${tenant}`);
      return 1;
    }
    io.out(flags.json ? JSON.stringify(view) : `updated ${describe(view)}`);
    return 0;
  } catch (err) {
    if (err instanceof ScheduleInputError) return reportInputError(io, err);
    throw err;
  }
}

const FLAG_OF: Record<string, string> = {
  name: '<name>',
  conversationId: '--conversation',
  timezone: '--tz',
  tenantId: '--tenant',
  cron: '--cron',
  overlap: '--overlap',
  prompt: 'the prompt',
  options: '--options',
  enabled: '--enable/--disable',
  '(root)': 'flags',
};

function flagOf(field: string): string {
  const top = field.split('.')[0]!;
  const flag = FLAG_OF[top];
  return flag ? `${flag}${field.slice(top.length)}` : field;
}

/** `schedule list [--tenant t] [--json]`: every tenant's schedules unless --tenant names one. */
export async function scheduleListCommand(config: Config, io: CliIo, flags: { tenant?: string; json?: boolean }): Promise<number> {
  const views = await withHandles(config, io, (h) => getSchedules(h, flags.tenant));
  if (flags.json) io.out(JSON.stringify(views));
  else if (views.length === 0) io.out('no schedules');
  else for (const v of views) io.out(describe(v));
  return 0;
}

/** `schedule remove <name> [--tenant t]`: exit 1 when there is no such schedule. */
export async function scheduleRemoveCommand(config: Config, io: CliIo, name: string, flags: { tenant?: string }): Promise<number> {
  const tenant = flags.tenant ?? 'default';
  const removed = await withHandles(config, io, (h) => removeSchedule(h, tenant, name));
  if (!removed) {
    io.err(`no schedule ${JSON.stringify(name)} for tenant ${tenant}`);
    return 1;
  }
  // A tick that was under way when the removal started finished first (the removal waits
  // for it): say which turn it left, so a turn at the edge is not a surprise.
  const last = removed.lastFiredAt ? ` (its last tick, at ${removed.lastFiredAt}, enqueued turn ${removed.lastTurnId ?? '?'})` : '';
  io.out(`removed ${removed.tenantId}/${removed.name}${last}; no tick enqueues after this`);
  return 0;
}

/** Adds `schedule add|update|list|remove` to the program (called by buildProgram). */
export function registerScheduleCommands(program: Command, config: () => Config, io: CliIo, setExit: (code: number) => void): void {
  const schedule = program.command('schedule').description('scheduled agents: a cron expression that enqueues a turn on a conversation');
  schedule
    .command('add')
    .description('add a schedule; the prompt follows -- (or use --prompt)')
    .argument('<name>', 'the schedule name, unique per tenant (rules of a conversation id)')
    .argument('[prompt...]', 'the prompt of each turn (after --)')
    .requiredOption('--conversation <id>', 'the conversation each tick enqueues on')
    .requiredOption('--cron <expr>', 'cron expression: 5 fields, or 6 with seconds first, e.g. "0 9 * * 1-5"')
    .option('--tz <zone>', 'IANA time zone the expression is read in (default UTC)')
    .option('--overlap <policy>', 'skip (default): do nothing while the conversation has a queued or running turn; queue: enqueue anyway')
    .option('--prompt <text>', 'the prompt, instead of the words after --')
    .option('--options <json>', 'turn options as JSON, e.g. {"maxTurns":5}')
    .option('--tenant <id>', 'tenant of the schedule and its conversation (default "default")')
    .option('--disabled', 'store it without ticking')
    .option('--json', 'print the schedule as one JSON line')
    .action(async (name: string, prompt: string[], opts: ScheduleAddFlags) => {
      setExit(await scheduleAddCommand(config(), io, name, prompt, opts));
    });
  schedule
    .command('update')
    .description('change some fields of a schedule; a new --cron or --tz counts from now')
    .argument('<name>', 'the schedule name')
    .option('--conversation <id>', 'the conversation each tick enqueues on')
    .option('--cron <expr>', 'cron expression: 5 fields, or 6 with seconds first')
    .option('--tz <zone>', 'IANA time zone the expression is read in')
    .option('--overlap <policy>', 'skip or queue')
    .option('--prompt <text>', 'the prompt of each turn')
    .option('--options <json>', 'turn options as JSON (replace the stored ones)')
    .option('--enable', 'start ticking again')
    .option('--disable', 'stop ticking, keep the schedule')
    .option('--tenant <id>', 'tenant of the schedule (default "default")')
    .option('--json', 'print the schedule as one JSON line')
    .action(async (name: string, opts: ScheduleUpdateFlags) => {
      setExit(await scheduleUpdateCommand(config(), io, name, opts));
    });
  schedule
    .command('list')
    .description("list schedules (every tenant's unless --tenant)")
    .option('--tenant <id>', 'only this tenant')
    .option('--json', 'print one JSON array')
    .action(async (opts: { tenant?: string; json?: boolean }) => {
      setExit(await scheduleListCommand(config(), io, opts));
    });
  schedule
    .command('remove')
    .description('remove a schedule; its ticks stop (turns already enqueued still run)')
    .argument('<name>', 'the schedule name')
    .option('--tenant <id>', 'tenant of the schedule (default "default")')
    .action(async (name: string, opts: { tenant?: string }) => {
      setExit(await scheduleRemoveCommand(config(), io, name, opts));
    });
}
