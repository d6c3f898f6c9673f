// What a killed worker leaves under the runs root (its attempts' config dirs, with the
// sessions they held) is removed by the housekeeping of any worker of the same host; a
// live worker's, another host's and anything not named as a run directory stay.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ownerTag } from '../src/runner/ownedDirs.js';
import { removeDeadRunDirs, runDirName, runDirPrefix } from '../src/worker/runDirs.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'agentq-rundirs-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const turnId = '0b7f4f0e-4c9d-4a55-9d7e-3f1f6f1c2a10';

describe('run directories', () => {
  it("are named after their worker, and a dead worker's are removed, links in them not followed", async () => {
    const name = runDirName(turnId, 2);
    expect(name.startsWith(runDirPrefix(turnId, 2))).toBe(true);
    expect(runDirPrefix(turnId, 2)).toBe(`${turnId.slice(0, 8)}.2.`);
    // Short enough that the conversation's link to it (../<name>/config) fits in an ext4 inode.
    expect(`../${name}/config`.length).toBeLessThan(60);
    expect(name.endsWith(`.${ownerTag()}`)).toBe(true);

    const deadPid = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
    const live = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const outside = path.join(root, 'outside');
      mkdirSync(outside);
      writeFileSync(path.join(outside, 'keep.txt'), 'not the run’s');
      const dead = `${turnId}.1.aaaaaaaa.${ownerTag(deadPid)}`;
      mkdirSync(path.join(root, 'runs', dead, 'config'), { recursive: true });
      writeFileSync(path.join(root, 'runs', dead, 'config', 'session.jsonl'), '{}\n');
      symlinkSync(outside, path.join(root, 'runs', dead, 'config', 'link'));
      const alive = `${turnId}.1.bbbbbbbb.${ownerTag(live.pid)}`;
      // Another host's worker with the dead pid: its pids are not this host's to judge.
      const otherHost = `${turnId}.1.cccccccc.${deadPid}-00000000`;
      for (const n of [alive, otherHost, '.cache', '.config-links', 'not-a-run-dir']) mkdirSync(path.join(root, 'runs', n));

      expect(await removeDeadRunDirs(path.join(root, 'runs'))).toEqual([dead]);
      expect(readdirSync(path.join(root, 'runs')).sort()).toEqual([otherHost, alive, '.cache', '.config-links', 'not-a-run-dir'].sort());
      expect(existsSync(path.join(outside, 'keep.txt'))).toBe(true);
      expect(await removeDeadRunDirs(path.join(root, 'missing'))).toEqual([]);
    } finally {
      live.kill('SIGKILL');
    }
  });

  it("are removed when their worker's pid now belongs to another process, such as the worker of a restarted container (which often gets its predecessor's pid)", async () => {
    const [, pid, start, host] = /^(\d+)-(\d+)-([0-9a-f]{8})$/.exec(ownerTag())!;
    expect(Number(pid)).toBe(process.pid);
    // This very pid, started earlier: a predecessor's.
    const predecessor = `${turnId}.1.aaaaaaaa.${pid}-${Number(start) - 1}-${host}`;
    const own = runDirName(turnId, 1);
    // A name from before the start was in the tag: judged by its pid alone.
    const deadPid = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
    const oldDead = `${turnId}.1.bbbbbbbb.${deadPid}-${host}`;
    const oldLive = `${turnId}.1.cccccccc.${pid}-${host}`;
    for (const n of [predecessor, own, oldDead, oldLive]) mkdirSync(path.join(root, n));

    expect((await removeDeadRunDirs(root)).sort()).toEqual([predecessor, oldDead].sort());
    expect(readdirSync(root).sort()).toEqual([own, oldLive].sort());
  });
});
