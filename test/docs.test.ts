// The documentation stays true to the code: docs/configuration.md is what
// `agentq config --markdown` prints, and every relative link in README.md and docs/
// (files and their #anchors) resolves.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { configMarkdownPage } from '../src/cli/configCommand.js';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const DOCS = [path.join(ROOT, 'README.md'), ...readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => path.join(ROOT, 'docs', f))];

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

/** The anchors of a markdown file's headings (outside code blocks). */
function anchors(file: string): Set<string> {
  const out = new Set<string>();
  let fence = false;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.startsWith('```')) fence = !fence;
    const m = !fence && /^#{1,6} (.*)$/.exec(line);
    if (m) out.add(anchorOf(m[1]!));
  }
  return out;
}

/** Relative link targets of a markdown file (outside code blocks): `[text](target)`. */
function links(file: string): string[] {
  const out: string[] = [];
  let fence = false;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.startsWith('```')) fence = !fence;
    if (fence) continue;
    for (const m of line.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (!/^[a-z]+:/i.test(target)) out.push(target);
    }
  }
  return out;
}

describe('the documentation', () => {
  it('docs/configuration.md is what `agentq config --markdown` prints (regenerate it when this fails)', () => {
    const committed = readFileSync(path.join(ROOT, 'docs', 'configuration.md'), 'utf8');
    expect(committed).toBe(`${configMarkdownPage()}\n`);
  });

  it('every relative link in README.md and docs/ resolves, anchors included', () => {
    const broken: string[] = [];
    for (const file of DOCS) {
      for (const target of links(file)) {
        const [rel, hash] = target.split('#') as [string, string | undefined];
        const dest = rel === '' ? file : path.resolve(path.dirname(file), rel);
        if (!existsSync(dest)) broken.push(`${path.relative(ROOT, file)}: ${target} (no such file)`);
        else if (hash !== undefined && dest.endsWith('.md') && !anchors(dest).has(hash)) broken.push(`${path.relative(ROOT, file)}: ${target} (no such heading)`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('the README stays short: the rest is in docs/', () => {
    expect(readFileSync(path.join(ROOT, 'README.md'), 'utf8').split('\n').length).toBeLessThanOrEqual(250);
  });
});
