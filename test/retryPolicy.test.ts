import { describe, expect, it } from 'vitest';
import type { RunFacts, RunOutcome } from '../src/runner/outcome.js';
import { backoffMs, decide } from '../src/worker/retryPolicy.js';

const facts: RunFacts = {
  sessionId: 's',
  costUsd: 0,
  usage: undefined,
  numTurns: 1,
  durationMs: 1,
  exitCode: 1,
  signal: undefined,
  stderrTail: '',
  resultText: undefined,
  toolCalls: 0,
  permissionDenials: [],
  deferredToolUse: undefined,
};

const cases: [RunOutcome, string, string | undefined][] = [
  [{ ...facts, type: 'success' }, 'finish:succeeded', undefined],
  [{ ...facts, type: 'max_turns' }, 'finish:failed', 'max_turns'],
  [{ ...facts, type: 'budget_exceeded' }, 'finish:failed', 'budget_exceeded'],
  [{ ...facts, type: 'api_error', httpStatus: 529, retryable: true, message: 'API Error: 529' }, 'retry', 'api_error'],
  [{ ...facts, type: 'api_error', httpStatus: 400, retryable: false, message: 'API Error: 400' }, 'finish:failed', 'api_error'],
  [{ ...facts, type: 'session_not_found', requestedSessionId: 's' }, 'session_missing', 'session_not_found'],
  [{ ...facts, type: 'cli_not_found', path: '/x', message: 'no' }, 'finish:failed', 'cli_not_found'],
  [{ ...facts, type: 'timed_out', timeout: 'idle', limitMs: 5 }, 'retry', 'timed_out'],
  [{ ...facts, type: 'cancelled', reason: 'user' }, 'finish:cancelled', 'cancelled'],
  [{ ...facts, type: 'crashed', message: 'boom' }, 'retry', 'crashed'],
  [{ ...facts, type: 'protocol_error', message: 'long line' }, 'retry', 'protocol_error'],
];

describe('decide', () => {
  it.each(cases)('%# maps the outcome to the turn decision', (outcome, expected, errorClass) => {
    const d = decide(outcome);
    expect(d.kind === 'finish' ? `finish:${d.status}` : d.kind).toBe(expected);
    expect(d.kind === 'finish' ? d.error?.class : d.error.class).toBe(errorClass);
  });
});

describe('backoffMs', () => {
  it('doubles per attempt within jitter and stays under the cap', () => {
    expect(backoffMs(1, 1000, 60_000, () => 0)).toBe(500);
    expect(backoffMs(1, 1000, 60_000, () => 1)).toBe(1000);
    expect(backoffMs(3, 1000, 60_000, () => 1)).toBe(4000);
    expect(backoffMs(30, 1000, 60_000, () => 1)).toBe(60_000);
  });
});
