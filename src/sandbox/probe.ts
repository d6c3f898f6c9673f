// Is bubblewrap usable here? Answered by starting a tiny sandbox with the same isolation
// flags a run uses (user, pid and net namespaces, no capabilities) and the same inner
// shape (socat listening on loopback), once per process: container seccomp or AppArmor
// profiles and sysctls such as kernel.unprivileged_userns_clone decide it, not the binary's presence.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import type { SandboxSettings } from './settings.js';
import { wrapInSandbox } from './wrapRun.js';

export type ProbeResult =
  | { ok: true; settings: SandboxSettings; version: string; ms: number }
  | { ok: false; reason: string; version: string | undefined };

const PROBE_TIMEOUT_MS = 10_000;
const cache = new Map<string, Promise<ProbeResult>>();

async function bwrapVersion(bwrapPath: string): Promise<string | undefined> {
  const r = await execa(bwrapPath, ['--version'], { reject: false, timeout: PROBE_TIMEOUT_MS, stdin: 'ignore', extendEnv: false, env: {} });
  return r.exitCode === 0 ? r.stdout.trim() : undefined;
}

async function probe(bwrapPath: string | undefined, socatPath: string | undefined): Promise<ProbeResult> {
  if (!bwrapPath) return { ok: false, reason: 'bwrap is not installed (no `bwrap` on PATH; Debian/Ubuntu: apt-get install bubblewrap)', version: undefined };
  const version = await bwrapVersion(bwrapPath);
  if (!version) return { ok: false, reason: `${bwrapPath} --version failed`, version };
  if (!socatPath) return { ok: false, reason: 'socat is not installed (no `socat` on PATH; apt-get install socat)', version };
  const settings: SandboxSettings = { bwrapPath, socatPath };
  const root = mkdtempSync(path.join(os.tmpdir(), 'agentq-probe-'));
  const dirs = { cwd: path.join(root, 'w'), configDir: path.join(root, 'c'), tmpDir: path.join(root, 't') };
  for (const d of Object.values(dirs)) mkdirSync(d);
  const started = performance.now();
  let wrapped: ReturnType<typeof wrapInSandbox> | undefined;
  try {
    // /bin/sh as the "CLI": it proves the namespaces, the mounts and socat all work.
    wrapped = wrapInSandbox(settings, {
      file: '/bin/sh',
      args: ['-c', 'test "$(id -u)" = 1000 && test -w /workspace && ! test -e /root/.agentq-probe-should-not-exist'],
      env: { PATH: '/usr/bin:/bin' },
      ...dirs,
      homeDir: undefined,
      addDirs: [],
    });
    const r = await execa(wrapped.file, wrapped.args, {
      reject: false,
      timeout: PROBE_TIMEOUT_MS,
      stdio: ['ignore', 'pipe', 'pipe', wrapped.fd3],
      extendEnv: false,
      env: wrapped.env,
      cwd: dirs.cwd,
    });
    if (r.exitCode !== 0) {
      const why = String(r.stderr || r.shortMessage || `exit code ${r.exitCode ?? '?'}`).trim().split('\n').slice(-2).join(' ');
      return { ok: false, reason: `a test sandbox failed to start: ${why}`, version };
    }
    return { ok: true, settings, version, ms: Math.round(performance.now() - started) };
  } catch (err) {
    return { ok: false, reason: `a test sandbox failed to start: ${(err as Error).message}`, version };
  } finally {
    wrapped?.close();
    rmSync(root, { recursive: true, force: true });
  }
}

/** Probes once per process per (bwrap, socat) pair; later calls share the answer. */
export function probeSandbox(bwrapPath: string | undefined, socatPath: string | undefined): Promise<ProbeResult> {
  const key = `${bwrapPath ?? ''}\0${socatPath ?? ''}`;
  let p = cache.get(key);
  if (!p) {
    p = probe(bwrapPath, socatPath);
    cache.set(key, p);
  }
  return p;
}
