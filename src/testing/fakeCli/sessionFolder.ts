// The session folder as the real CLI lays it out (src/claude/subagentPath.ts and
// sessionPath.ts have the measured facts): subagent transcripts
// `<project>/<sessionId>/subagents/agent-<id>.jsonl` with their `.meta.json`, and large
// tool outputs `<project>/<sessionId>/tool-results/<name>.txt`.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { PlantSpec } from './spec.js';

function subagentsDir(sessionFile: string, sessionId: string): string {
  return path.join(path.dirname(sessionFile), sessionId, 'subagents');
}

/** Appends one sidechain line with `text` to agent `agentId`'s transcript (and writes its meta once). */
export function writeSubagentLine(sessionFile: string, sessionId: string, agentId: string, text: string): void {
  const dir = subagentsDir(sessionFile, sessionId);
  mkdirSync(dir, { recursive: true });
  const meta = path.join(dir, `agent-${agentId}.meta.json`);
  if (!existsSync(meta)) writeFileSync(meta, JSON.stringify({ agentType: 'general-purpose', description: `fake ${agentId}` }));
  const line = { parentUuid: null, isSidechain: true, agentId, type: 'user', message: { role: 'user', content: text }, uuid: randomUUID(), sessionId };
  appendFileSync(path.join(dir, `agent-${agentId}.jsonl`), `${JSON.stringify(line)}\n`);
}

/** The texts in each subagent transcript on disk, by agent id; agents with a meta file are marked. */
export function readSubagents(sessionFile: string, sessionId: string): Record<string, { texts: string[]; meta: boolean }> {
  const dir = subagentsDir(sessionFile, sessionId);
  const out: Record<string, { texts: string[]; meta: boolean }> = {};
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const m = /^agent-(.+)\.jsonl$/.exec(name);
    if (!m) continue;
    const texts = readFileSync(path.join(dir, name), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => String((JSON.parse(l) as { message?: { content?: unknown } }).message?.content ?? ''));
    out[m[1]!] = { texts, meta: existsSync(path.join(dir, `agent-${m[1]}.meta.json`)) };
  }
  return out;
}

function toolResultsDir(sessionFile: string, sessionId: string): string {
  return path.join(path.dirname(sessionFile), sessionId, 'tool-results');
}

/** Saves `text` as the tool output `<name>.txt`. */
export function writeToolResult(sessionFile: string, sessionId: string, name: string, text: string): void {
  const dir = toolResultsDir(sessionFile, sessionId);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, `${name}.txt`), text);
}

/** The saved tool outputs on disk, by name. */
export function readToolResults(sessionFile: string, sessionId: string): Record<string, string> {
  const dir = toolResultsDir(sessionFile, sessionId);
  const out: Record<string, string> = {};
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) if (name.endsWith('.txt')) out[name.slice(0, -4)] = readFileSync(path.join(dir, name), 'utf8');
  return out;
}

/** What a hostile agent leaves in its session folder for the worker to read: links, FIFOs, loops. */
export function plantInFolder(sessionFile: string, sessionId: string, plant: PlantSpec): void {
  const dir = path.join(path.dirname(sessionFile), sessionId);
  const fresh = (rel: string) => {
    const at = path.join(dir, rel);
    mkdirSync(path.dirname(at), { recursive: true });
    rmSync(at, { recursive: true, force: true });
    return at;
  };
  for (const [rel, target] of Object.entries(plant.links ?? {})) symlinkSync(target, fresh(rel));
  for (const rel of plant.fifos ?? []) execFileSync('mkfifo', [fresh(rel)]);
  if (plant.loops) {
    const loops = path.join(dir, 'loops');
    mkdirSync(loops, { recursive: true });
    for (let i = 0; i < plant.loops; i++) {
      for (const [name, target] of [[`self${i}`, '.'], [`up${i}`, '..']] as const) {
        rmSync(path.join(loops, name), { force: true });
        symlinkSync(target, path.join(loops, name));
      }
    }
  }
}

/** Replaces the session file with a link to `target` (the turn's writes are over). */
export function linkSessionFile(sessionFile: string, target: string): void {
  rmSync(sessionFile, { force: true });
  symlinkSync(target, sessionFile);
}
