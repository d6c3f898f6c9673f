// Scans /proc for live (non-zombie) processes, to prove nothing of a run is left behind.
import { readFileSync, readdirSync } from 'node:fs';

export interface ProcInfo {
  pid: number;
  pgid: number;
  cmdline: string;
}

export function liveProcesses(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z') continue;
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      out.push({ pid: Number(name), pgid: Number(fields[2]), cmdline });
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

export function groupMembers(pgid: number): ProcInfo[] {
  return liveProcesses().filter((p) => p.pgid === pgid);
}
