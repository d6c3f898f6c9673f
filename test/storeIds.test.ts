import { describe, expect, it } from 'vitest';
import { StoreInputError } from '../src/errors.js';
import { parseConversationId, parseSessionId, workspaceDirName } from '../src/store/ids.js';

function refusal(value: unknown, field?: string): StoreInputError {
  try {
    parseConversationId(value, field);
  } catch (err) {
    expect(err).toBeInstanceOf(StoreInputError);
    return err as StoreInputError;
  }
  throw new Error(`accepted ${JSON.stringify(value)}`);
}

describe('parseConversationId', () => {
  it('accepts producer ids made of letters, digits and . _ : @ -', () => {
    for (const id of ['ticket-4812', 'a', 'proj:research@team.example_1', 'x'.repeat(128)]) expect(parseConversationId(id)).toBe(id);
  });

  it.each([
    ['a/b', 'must not contain / or \\'],
    ['a\\b', 'must not contain / or \\'],
    ['..', 'must not contain ..'],
    ['a..b', 'must not contain ..'],
    ['a\0b', 'must not contain NUL'],
    ['a\nb', 'must not contain control characters'],
    ['tab\there', 'must not contain control characters'],
    ['del\u007f', 'must not contain control characters'],
    ['', 'must not be empty'],
    ['x'.repeat(129), 'must be at most 128 characters'],
    ['.hidden', 'must not start with .'],
    ['caf\u00e9', 'may only contain'],
    ['with space', 'may only contain'],
  ])('refuses %j, naming the field: %s', (value, reason) => {
    const err = refusal(value);
    expect(err.field).toBe('conversationId');
    expect(err.message).toContain(`conversationId: ${reason}`);
  });

  it('names the field the caller gives', () => {
    expect(refusal('../etc', 'externalId').message).toMatch(/^externalId: /);
    expect(refusal(42).message).toContain('must be a string');
  });

  it('session ids must be safe file names', () => {
    expect(parseSessionId('91e55eb6-85a3-4c62-b695-195408835595')).toBe('91e55eb6-85a3-4c62-b695-195408835595');
    for (const bad of ['', '../x', 'a/b', '.x', 'a\0b']) expect(() => parseSessionId(bad)).toThrow(/^sessionId: /);
  });
});

describe('workspaceDirName', () => {
  it('is stable, safe, readable, and distinct per tenant and per id', () => {
    const name = workspaceDirName('ticket-4812');
    expect(name).toBe(workspaceDirName('ticket-4812', 'default'));
    expect(name).toMatch(/^ticket-4812-[0-9a-f]{12}$/);
    expect(workspaceDirName('ticket-4812', 'acme')).not.toBe(name);
    // Same slug ('a-b'), different ids: different names.
    expect(workspaceDirName('a:b')).not.toBe(workspaceDirName('a@b'));
    const long = workspaceDirName(`x${'y'.repeat(127)}`);
    expect(long.length).toBeLessThanOrEqual(61);
    expect(long).toMatch(/^[A-Za-z0-9._-]+$/);
  });

  it('refuses an id that is not valid instead of deriving a name from it', () => {
    expect(() => workspaceDirName('../../etc')).toThrow(StoreInputError);
  });
});
