// bwrap's argv: what is mounted where, and in an order that does not hide a mount.
import { describe, expect, it } from 'vitest';
import { buildBwrapArgs, innerCommand, API_LISTENER } from '../src/sandbox/bwrapArgs.js';

/** The [flag, host, inside] triples of the bind mounts, in argv order. */
function binds(args: string[]): [string, string, string][] {
  const out: [string, string, string][] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--bind' || args[i] === '--ro-bind') out.push([args[i]!, args[i + 1]!, args[i + 2]!]);
  }
  return out;
}

describe('buildBwrapArgs', () => {
  const layout = {
    workspace: '/srv/ws/ticket-1',
    writable: [
      { host: '/srv/runs/t1/config', inside: '/home/agent' },
      { host: '/srv/runs/t1/tmp', inside: '/tmp' },
    ],
    // A CLI installed in a checkout under /tmp (CI clones there).
    readOnly: ['/tmp/ci7/node_modules/@anthropic-ai/claude-code/bin'],
    socketDir: '/tmp/agentq-sbx-1/sock',
    passwdFile: '/tmp/agentq-sbx-1/passwd',
    groupFile: '/tmp/agentq-sbx-1/group',
    hostsFile: '/tmp/agentq-sbx-1/hosts',
  };

  it('mounts the private /tmp before a read-only directory below it, so the CLI stays visible', () => {
    const inside = binds(buildBwrapArgs(layout)).map(([, , p]) => p);
    const tmp = inside.indexOf('/tmp');
    const cli = inside.indexOf('/tmp/ci7/node_modules/@anthropic-ai/claude-code/bin');
    expect(tmp).toBeGreaterThan(-1);
    expect(cli).toBeGreaterThan(tmp);
  });

  it('writes only the workspace, the config dir and /tmp; the generated /etc files and the socket are read-only', () => {
    const b = binds(buildBwrapArgs(layout));
    expect(b.filter(([flag]) => flag === '--bind').map(([, , p]) => p).sort()).toEqual(['/home/agent', '/tmp', '/workspace']);
    for (const p of ['/etc/passwd', '/etc/group', '/etc/hosts', '/run/agentq']) expect(b.find(([, , q]) => q === p)?.[0]).toBe('--ro-bind');
    expect(b.some(([, host]) => host === '/srv/ws')).toBe(false);
  });

  it('starts a socat per listener and waits for each before the CLI', () => {
    const cmd = innerCommand('/usr/bin/socat', '/opt/claude', ['-p'], [API_LISTENER, { ip: '127.0.0.2', port: 443, socket: '/run/agentq/tcp-0.sock' }]);
    const script = cmd[2]!;
    expect(script).toContain('TCP-LISTEN:443,bind=127.0.0.2');
    // /proc/net/tcp writes 127.0.0.2:443 as 0200007F:01BB.
    expect(script).toContain(' 0200007F:01BB 00000000:0000 0A');
    expect(cmd.slice(4)).toEqual(['/opt/claude', '-p']);
  });
});
