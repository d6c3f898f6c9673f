// The fake's stdin in stream-json input mode, read once and shared: user messages go to
// the turn loop in order, and control responses go to the permission request waiting for
// them (`--permission-prompt-tool stdio`, as the real CLI asks its parent: ./gate.ts).
import { createInterface } from 'node:readline';

export class StdinLines {
  private readonly lines: string[] = [];
  private ended = false;
  private wake: (() => void) | undefined;
  private readonly responses = new Map<string, (response: unknown) => void>();

  constructor(input: NodeJS.ReadableStream) {
    createInterface({ input, crlfDelay: Infinity })
      .on('line', (line) => this.take(line))
      .on('close', () => {
        this.ended = true;
        for (const answer of this.responses.values()) answer(undefined);
        this.responses.clear();
        this.wake?.();
      });
  }

  /** The next line that is not a control response; undefined at the end of stdin. */
  async next(): Promise<string | undefined> {
    while (this.lines.length === 0 && !this.ended) await new Promise<void>((r) => (this.wake = r));
    this.wake = undefined;
    return this.lines.shift();
  }

  /** The `response` of the control response to `requestId`; undefined when stdin ends first. */
  response(requestId: string): Promise<unknown> {
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve) => this.responses.set(requestId, resolve));
  }

  private take(line: string): void {
    const control = controlResponse(line);
    if (control) {
      const answer = this.responses.get(control.requestId);
      this.responses.delete(control.requestId);
      answer?.(control.response);
      return;
    }
    this.lines.push(line);
    this.wake?.();
  }
}

function controlResponse(line: string): { requestId: string; response: unknown } | undefined {
  if (!line.includes('"control_response"')) return undefined;
  try {
    const value = JSON.parse(line) as { type?: unknown; response?: { request_id?: unknown; response?: unknown; subtype?: unknown } };
    if (value.type !== 'control_response' || typeof value.response?.request_id !== 'string') return undefined;
    return { requestId: value.response.request_id, response: value.response.subtype === 'success' ? value.response.response : undefined };
  } catch {
    return undefined;
  }
}
