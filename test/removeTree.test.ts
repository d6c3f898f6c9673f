// Removing a run's directory (src/agentFiles/removeTree.ts), against real files: whatever
// the agent left in it goes, and nothing a link in it leads to.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_DEPTH, ENTRIES_PER_TICK } from '../src/agentFiles/agentTree.js';
import { removeAgentDir } from '../src/agentFiles/removeTree.js';
import { tempDirs } from './helpers/files.js';

const dirs = tempDirs();
afterEach(() => dirs.cleanup());

/** A run's directory as an agent could leave it, next to files it must never get the worker to remove. */
function setup() {
  const base = dirs.make('remove-tree');
  const run = path.join(base, 'run');
  const outside = path.join(base, 'outside');
  mkdirSync(path.join(outside, 'sub'), { recursive: true });
  writeFileSync(path.join(outside, 'secret.txt'), 'OUTSIDE');
  writeFileSync(path.join(outside, 'sub', 'kept.txt'), 'OUTSIDE');
  const project = path.join(run, 'config', 'projects', 'p');
  mkdirSync(project, { recursive: true });
  mkdirSync(path.join(run, 'tmp'));
  writeFileSync(path.join(run, 'config', '.claude.json'), '{}');
  writeFileSync(path.join(project, 's.jsonl'), '{"ok":1}\n');
  symlinkSync(outside, path.join(project, 'dir-link'));
  symlinkSync(path.join(outside, 'secret.txt'), path.join(run, 'config', 'file-link'));
  symlinkSync('../../..', path.join(project, 'up-link'));
  symlinkSync(path.join(base, 'nowhere'), path.join(run, 'tmp', 'dangling'));
  execFileSync('mkfifo', [path.join(run, 'tmp', 'fifo')]);
  return { base, run, outside };
}

function outsideIntact(outside: string): void {
  expect(readFileSync(path.join(outside, 'secret.txt'), 'utf8')).toBe('OUTSIDE');
  expect(readFileSync(path.join(outside, 'sub', 'kept.txt'), 'utf8')).toBe('OUTSIDE');
}

describe('removeAgentDir', () => {
  it('removes files, directories, links and FIFOs, and follows no link', async () => {
    const { run, outside } = setup();
    await removeAgentDir(run);
    expect(existsSync(run)).toBe(false);
    outsideIntact(outside);
  });

  it('removes a directory of more entries than one tick takes', async () => {
    const { run, outside } = setup();
    const many = path.join(run, 'config', 'many');
    mkdirSync(many);
    for (let i = 0; i < ENTRIES_PER_TICK * 2 + 7; i++) writeFileSync(path.join(many, `f${i}`), '');
    symlinkSync(outside, path.join(many, 'zz-link'));
    await removeAgentDir(run);
    expect(existsSync(run)).toBe(false);
    outsideIntact(outside);
  });

  it('removes a tree deeper than a walk goes', async () => {
    const { run, outside } = setup();
    let deep = run;
    for (let i = 0; i < DEFAULT_MAX_DEPTH + 6; i++) deep = path.join(deep, 'd');
    mkdirSync(deep, { recursive: true });
    symlinkSync(outside, path.join(deep, 'link'));
    await removeAgentDir(run);
    expect(existsSync(run)).toBe(false);
    outsideIntact(outside);
  });

  it('does nothing for a directory that is gone', async () => {
    const { base } = setup();
    await expect(removeAgentDir(path.join(base, 'never-made'))).resolves.toBeUndefined();
  });

  it('removes several directories at once', async () => {
    const runs = Array.from({ length: 5 }, () => setup());
    await Promise.all(runs.map((r) => removeAgentDir(r.run)));
    for (const { run, outside } of runs) {
      expect(existsSync(run)).toBe(false);
      outsideIntact(outside);
    }
  });

  it('given a link, removes the link and not what it leads to', async () => {
    const { base, outside } = setup();
    const link = path.join(base, 'run-link');
    symlinkSync(outside, link);
    await removeAgentDir(link);
    expect(existsSync(link)).toBe(false);
    outsideIntact(outside);
  });
});
