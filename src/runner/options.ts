// The typed options of one CLI run, validated before anything is spawned so a bad field
// is reported by name instead of surfacing as a confusing CLI failure.
import path from 'node:path';
import { z } from 'zod';
import { RunOptionsError } from '../errors.js';
import { describeIssues } from '../validation.js';
import { approvalRuleSchema } from './approvalGate.js';

const uuid = z.uuid({ error: 'must be a UUID' });
const absolutePath = z.string().refine((p) => path.isAbsolute(p), { error: 'must be an absolute path' });
/** Tool names and rules such as `Bash(git log:*)`; no control characters. */
const toolRule = z
  .string()
  .min(1)
  .max(512)
  .regex(/^[^\p{Cc}]+$/u, { error: 'must not contain control characters' });

export const permissionModes = ['default', 'acceptEdits', 'bypassPermissions', 'plan', 'dontAsk'] as const;

export const sessionSchema = z.discriminatedUnion('mode', [
  /** A new session whose id the caller picks up front (`--session-id`). */
  z.object({ mode: z.literal('new'), sessionId: uuid }),
  /** Resume a stored session (`--resume`), optionally forking it into a new id. */
  z.object({
    mode: z.literal('resume'),
    sessionId: uuid,
    fork: z.boolean().default(false),
    /** With `fork`, the id of the forked session (`--session-id`); default: the CLI picks. */
    forkSessionId: uuid.optional(),
  }),
]);

const gateDecisionSchema = z.strictObject({
  decision: z.enum(['allow', 'deny']),
  tool: z.string().min(1).max(200),
  message: z.string().max(10_000).optional(),
  updatedInput: z.record(z.string(), z.unknown()).optional(),
  inputSha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
});

/** The fields of run options, each checked alone (runOptionsSchema adds the checks across fields). */
export const runOptionsFields = z.strictObject({
  /** The user prompt of this turn (with `streamInput`, the first message); none with `resumeDeferred`. */
  prompt: z.string().min(1, { error: 'must not be empty' }).max(1_000_000, { error: 'must be at most 1,000,000 characters' }).optional(),
  /** Resume the session to answer its deferred tool call: no prompt is sent (docs/approvals.md). */
  resumeDeferred: z.boolean().optional(),
  /** Approval gate: tool calls matching `rules` need a decision (src/runner/approvalGate.ts). */
  gate: z
    .strictObject({
      rules: z.array(z.union([approvalRuleSchema, z.literal('*')])).max(50),
      decisions: z.record(z.string().min(1).max(200), gateDecisionSchema),
      runKey: z.string().regex(/^[A-Za-z0-9-]{1,64}$/),
      lock: z.boolean().optional(),
    })
    .optional(),
  /** Working directory the CLI runs in (must exist). */
  cwd: absolutePath,
  /** Per-run `CLAUDE_CONFIG_DIR`; also the run's `HOME` unless `homeDir` is set. */
  configDir: absolutePath,
  /** The run starts only while the symlink `link` leads to `target`: its attempt still owns the conversation here (./linkCheck.ts). */
  attemptLink: z.strictObject({ link: absolutePath, target: absolutePath }).optional(),
  /** Per-run `HOME`; default: `configDir`. */
  homeDir: absolutePath.optional(),
  /** Per-run `CLAUDE_CODE_TMPDIR`. */
  tmpDir: absolutePath,
  session: sessionSchema,
  model: z.string().min(1).max(200).optional(),
  systemPrompt: z.string().max(200_000).optional(),
  appendSystemPrompt: z.string().max(200_000).optional(),
  allowedTools: z.array(toolRule).max(200).optional(),
  disallowedTools: z.array(toolRule).max(200).optional(),
  permissionMode: z.enum(permissionModes).optional(),
  maxTurns: z.number().int().min(1).max(10_000).optional(),
  maxBudgetUsd: z.number().positive().max(100_000).optional(),
  includePartialMessages: z.boolean().optional(),
  /** Extra directories the agent may use (`--add-dir`). */
  addDirs: z.array(absolutePath).max(50).optional(),
  /** MCP server configuration: a JSON string or a path (`--mcp-config`). */
  mcpConfig: z.array(z.string().min(1)).max(20).optional(),
  /** Keep stdin open and speak `--input-format stream-json` (the prompt is the first message). */
  streamInput: z.boolean().optional(),
  /** Extra environment for this run only, on top of the allow-listed base. */
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).optional(),
});

export const runOptionsSchema = runOptionsFields.superRefine((o, ctx) => {
  if (o.resumeDeferred === true) {
    if (o.prompt !== undefined) ctx.addIssue({ code: 'custom', path: ['prompt'], message: 'must not be given with resumeDeferred' });
    if (o.session.mode !== 'resume') ctx.addIssue({ code: 'custom', path: ['resumeDeferred'], message: 'needs a session to resume' });
    if (o.streamInput === true) ctx.addIssue({ code: 'custom', path: ['resumeDeferred'], message: 'cannot be used with streamInput' });
  } else if (o.prompt === undefined) ctx.addIssue({ code: 'custom', path: ['prompt'], message: 'is required' });
});

export type RunOptions = z.input<typeof runOptionsSchema>;
export type ValidRunOptions = z.output<typeof runOptionsSchema>;

/** Validates run options; throws RunOptionsError naming every bad field. */
export function parseRunOptions(input: unknown): ValidRunOptions {
  const parsed = runOptionsSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const { fields, lines } = describeIssues(parsed.error);
  throw new RunOptionsError(`Invalid run options:\n  ${lines.join('\n  ')}`, fields);
}
