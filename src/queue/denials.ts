// Tool calls the CLI refused in a turn (its result's `permission_denials`): what `show`,
// `transcript`, `enqueue --wait`, the API and the viewer say about them. A headless CLI
// refuses every edit and command its permission mode does not allow, and the turn still
// ends `succeeded`: without this a user sees success and no file.

/** The refused tool calls of a turn, as the API and `show --json` give them. */
export interface PermissionDenials {
  /** How many tool calls were refused. */
  count: number;
  /** The refused tools' names, each once, in the order first refused. */
  tools: string[];
  /** True when the model called tools and the CLI refused every one of them. */
  everyToolCall: boolean;
}

/** From a turn's stored columns; null when nothing was refused (or the turn has not run). */
export function permissionDenials(
  toolCalls: number | null,
  denials: readonly { tool: string }[] | null,
): PermissionDenials | null {
  if (!denials || denials.length === 0) return null;
  return {
    count: denials.length,
    tools: [...new Set(denials.map((d) => d.tool))],
    everyToolCall: toolCalls !== null && denials.length >= toolCalls,
  };
}

/** One line for people: what was refused, and how to allow it. */
export function denialsNote(d: PermissionDenials): string {
  const what = d.everyToolCall
    ? `every tool call was refused (${d.count}: ${d.tools.join(', ')})`
    : `${d.count} tool call${d.count === 1 ? ' was' : 's were'} refused (${d.tools.join(', ')})`;
  return `${what} by the CLI's permissions; allow them with options.permissionMode (e.g. "acceptEdits") or options.allowedTools`;
}
