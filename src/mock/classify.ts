// Which `/v1/messages` requests belong to the main conversation (and so consume the
// script), and what to answer the others with.
//
// Observed with the real CLI 2.1.197 in `-p` mode:
//   - Conversation turns (querySource "sdk"): streaming, the full tool list (even
//     `--tools ""` still sends `tools: []`), `thinking: {type:"adaptive"}`,
//     `context_management`, and role:"system" messages in the middle of `messages`.
//     `--json-schema` adds a StructuredOutput TOOL; it does not use `output_config.format`.
//   - Without CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1, a session-title request for
//     prompts that are not trivially short: same model, streaming, max_tokens 64000, but
//     `tools: []`, `thinking: {type:"disabled"}`, no `context_management`, and
//     `output_config.format` = json_schema `{title: string}`. With the variable set (as
//     the tests and demo run), 2.1.197 made no auxiliary request at all.
//   - The binary also contains other side queries (not seen in `-p` runs): one-shot
//     helpers (bash prefix, web-fetch summary, tool-use summaries...) built the same way as
//     the title request, and "side queries" / probes (model validation, API-key check,
//     quota: `max_tokens: 1`, non-streaming, no tools, no thinking).
//
// Rule, in order:
//   1. `output_config.format` present                    -> auxiliary (structured side query)
//   2. no tools (absent or []) AND thinking absent/disabled -> auxiliary (one-shot helper/probe)
//   3. anything else                                      -> main
// Main therefore also covers sub-agent turns (they carry tools) and "forked" queries that
// reuse the conversation's prefix (compaction, away summary), which a test scripting such
// flows would want to script too. A conversation run with no tools AND thinking turned off
// would be misread as auxiliary; the CLI does not do that by default.
import type { MessagesRequest } from './anthropic.js';

export type RequestKind = 'main' | 'auxiliary';

function hasOutputFormat(req: MessagesRequest): boolean {
  const oc = req.output_config;
  return typeof oc === 'object' && oc !== null && (oc as Record<string, unknown>).format !== undefined;
}

function thinkingOff(req: MessagesRequest): boolean {
  const t = req.thinking;
  if (t === undefined || t === null) return true;
  return typeof t === 'object' && (t as Record<string, unknown>).type === 'disabled';
}

export function classifyMessagesRequest(req: MessagesRequest): RequestKind {
  if (hasOutputFormat(req)) return 'auxiliary';
  if ((req.tools === undefined || req.tools.length === 0) && thinkingOff(req)) return 'auxiliary';
  return 'main';
}

/** Text of auxiliary replies that ask for no particular format. */
export const AUXILIARY_TEXT = 'mock auxiliary reply';

/**
 * A small value that satisfies a JSON schema (the subset side queries use: object,
 * string, number/integer, boolean, array, enum, const), so a structured side query gets
 * something it can parse: the title request gets `{"title":"mock title"}`.
 */
export function sampleForSchema(schema: unknown, name = 'value'): unknown {
  if (typeof schema !== 'object' || schema === null) return `mock ${name}`;
  const s = schema as Record<string, unknown>;
  if ('const' in s) return s.const;
  if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[0];
  const type = Array.isArray(s.type) ? (s.type[0] as unknown) : s.type;
  switch (type) {
    case 'object': {
      const props = (s.properties ?? {}) as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const [key, sub] of Object.entries(props)) out[key] = sampleForSchema(sub, key);
      return out;
    }
    case 'array':
      return [];
    case 'number':
    case 'integer':
      return 0;
    case 'boolean':
      return false;
    case 'null':
      return null;
    default:
      return `mock ${name}`;
  }
}

/** The text answered to an auxiliary request: JSON when it asks for a json_schema format. */
export function auxiliaryText(req: MessagesRequest): string {
  const oc = req.output_config as { format?: { type?: string; schema?: unknown } } | undefined;
  if (oc?.format?.type === 'json_schema') return JSON.stringify(sampleForSchema(oc.format.schema));
  return AUXILIARY_TEXT;
}
