// What a turn's workspace costs the attempt when the turn leaves it as it was: two stamps
// of the tree (src/store/workspaceArchive.ts, treeStamp: one when the workspace is
// prepared, one at the commit), against packing it, which every commit did before.
// - workspace_unchanged_ms: both stamps of a ~25 MB workspace of 2,000 source files in
//   40 directories; baseline: packWorkspace of the same tree (tar, gzip, sha256), the same run.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packWorkspace, workspaceStamp, type PackOptions } from '../store/workspaceArchive.js';
import { median, round, type Benchmark, type Figure } from './harness.js';

const DIRS = 40;
const FILES_PER_DIR = 50;
const LINES_PER_FILE = 250;
const REPS = 7;

/** A tree of source-like files (random identifiers: about as compressible as code). */
function makeTree(root: string): void {
  for (let d = 0; d < DIRS; d++) {
    mkdirSync(path.join(root, `pkg${d}`, 'lib'), { recursive: true });
    for (let f = 0; f < FILES_PER_DIR; f++) {
      const lines = Array.from({ length: LINES_PER_FILE }, (_, i) => `export const v${i} = '${randomBytes(8).toString('hex')}'; // line ${i} of file ${f}`);
      writeFileSync(path.join(root, `pkg${d}`, f % 2 === 0 ? '' : 'lib', `file${f}.ts`), `${lines.join('\n')}\n`);
    }
  }
}

export const workspaceBench: Benchmark = {
  name: 'workspace',
  description: 'an unchanged workspace at the commit: its two stamps (prepare and commit) vs packing it',
  async run(ctx): Promise<Figure[]> {
    const root = mkdtempSync(path.join(os.tmpdir(), 'agentq-bench-ws-'));
    try {
      makeTree(root);
      const options: PackOptions = { maxBytes: 1024 * 1024 * 1024, exclude: [] };
      const packed = await packWorkspace(root, options);
      ctx.log(`workspace: ${packed.fileCount} files, ${(packed.contentBytes / 1e6).toFixed(1)} MB (${(packed.archive.length / 1e6).toFixed(1)} MB packed)`);
      const stamps: number[] = [];
      const packs: number[] = [];
      for (let rep = 0; rep < REPS; rep++) {
        let t = performance.now();
        const before = await workspaceStamp(root, options);
        const after = await workspaceStamp(root, options);
        stamps.push(performance.now() - t);
        if (before === undefined || before !== after) throw new Error('the stamp of an untouched tree changed');
        t = performance.now();
        await packWorkspace(root, options);
        packs.push(performance.now() - t);
        ctx.log(`workspace rep ${rep + 1}: two stamps ${stamps.at(-1)!.toFixed(1)} ms, pack ${packs.at(-1)!.toFixed(1)} ms`);
      }
      return [
        {
          bench: 'workspace_unchanged_ms',
          value: round(median(stamps), 1),
          unit: 'ms',
          baseline: round(median(packs), 1),
          target: 'informational (what an unchanged workspace costs a turn; baseline: packing it, as every commit did before)',
        },
      ];
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  },
};
