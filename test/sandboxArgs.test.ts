// bwrap's argv: what is mounted where, and in an order that does not hide a mount; what of
// the environment and the host's paths the agent can see; which requests the forwarder passes.
import { describe, expect, it } from 'vitest';
import { forwardedTarget } from '../src/sandbox/apiProxy.js';
import { buildBwrapArgs, innerCommand, API_LISTENER } from '../src/sandbox/bwrapArgs.js';
import { DUMMY_API_KEY, parseCustomHeaders, SANDBOX_PATH, splitSandboxEnv } from '../src/sandbox/sandboxEnv.js';
import { wrapInSandbox } from '../src/sandbox/wrapRun.js';

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

describe('what the agent can read of the worker', () => {
  const env = {
    PATH: '/srv/agentq/node_modules/.bin:/usr/bin:/bin',
    ANTHROPIC_API_KEY: 'sk-ant-real-key',
    ANTHROPIC_AUTH_TOKEN: 'real-bearer',
    CLAUDE_CODE_OAUTH_TOKEN: 'real-oauth',
    ANTHROPIC_CUSTOM_HEADERS: 'X-Gateway-Key: gw-secret\nX-Team: red',
    ANTHROPIC_FOUNDRY_API_KEY: 'foundry-secret',
    CLAUDE_CODE_MAX_RETRIES: '2',
    GITHUB_TOKEN: 'gh-meant-for-the-agent',
    HTTPS_PROXY: 'http://proxy.corp:3128',
    AGENTQ_RUN_ID: 'run-1',
  };

  it('credentials go to the forwarder; the sandbox gets placeholders, no headers, no other secret-named variable, its own PATH', () => {
    const { inside, credentials } = splitSandboxEnv(env, ['GITHUB_TOKEN']);
    expect(credentials).toEqual({ apiKey: 'sk-ant-real-key', bearerToken: 'real-bearer', headers: { 'x-gateway-key': 'gw-secret', 'x-team': 'red' } });
    expect(inside).toEqual({
      PATH: SANDBOX_PATH,
      ANTHROPIC_API_KEY: DUMMY_API_KEY,
      ANTHROPIC_AUTH_TOKEN: DUMMY_API_KEY,
      CLAUDE_CODE_OAUTH_TOKEN: DUMMY_API_KEY,
      CLAUDE_CODE_MAX_RETRIES: '2',
      GITHUB_TOKEN: 'gh-meant-for-the-agent',
      AGENTQ_RUN_ID: 'run-1',
    });
    // Without the operator naming it, a token is not the agent's either.
    expect(splitSandboxEnv(env).inside.GITHUB_TOKEN).toBeUndefined();
    // An OAuth token alone is the bearer.
    expect(splitSandboxEnv({ CLAUDE_CODE_OAUTH_TOKEN: 'o' }).credentials.bearerToken).toBe('o');
    expect(parseCustomHeaders('bad line\n: no name\nOk: 1\r\nSp ace: x')).toEqual({ ok: '1' });
  });

  it("bwrap's argv holds no host path of the run (they go through fd 3), and no credential", () => {
    const wrapped = wrapInSandbox(
      { bwrapPath: '/usr/bin/bwrap', socatPath: '/usr/bin/socat' },
      {
        file: process.execPath,
        args: ['-p'],
        env,
        cwd: '/srv/agentq-workspaces/tenant-ticket-1',
        configDir: '/srv/agentq-runs/turn.1.abc/config',
        homeDir: undefined,
        tmpDir: '/srv/agentq-runs/turn.1.abc/tmp',
        addDirs: [],
      },
    );
    try {
      const argv = wrapped.args.join(' ');
      const options = new TextDecoder().decode(wrapped.fd3).split('\0');
      expect(wrapped.args.slice(0, 3)).toEqual(['--args', '3', '--']);
      expect(argv).not.toMatch(/agentq-workspaces|agentq-runs|agentq-sbx/);
      expect(options).toContain('/srv/agentq-workspaces/tenant-ticket-1');
      expect(options).toContain('/srv/agentq-runs/turn.1.abc/config');
      const visible = `${argv} ${Object.entries(wrapped.env).join(' ')}`;
      for (const secret of ['sk-ant-real-key', 'real-bearer', 'real-oauth', 'gw-secret', 'foundry-secret', 'AGENTQ_PARENT_PID', '/srv/']) {
        expect(visible).not.toContain(secret);
      }
    } finally {
      wrapped.close();
    }
  });
});

describe('the API forwarder', () => {
  it('passes POST /v1/messages and /v1/messages/count_tokens exactly, and nothing else', () => {
    expect(forwardedTarget('POST', '/v1/messages?beta=true')).toBe('/v1/messages?beta=true');
    expect(forwardedTarget('POST', '/v1/messages/count_tokens?beta=true')).toBe('/v1/messages/count_tokens?beta=true');
    expect(forwardedTarget('POST', '/v1/messages')).toBe('/v1/messages');
    for (const [method, url] of [
      ['POST', '/v1/../anything'],
      ['POST', '/v1/messages/../../admin'],
      ['POST', '/v1/%2e%2e/anything'],
      ['POST', '/v1/messages%2f..%2f..%2fx'],
      ['POST', '/v1//messages'],
      ['POST', '/v1/messages/'],
      ['POST', '/v1/./messages'],
      ['POST', '/V1/messages'],
      ['POST', '/v1/messages\\..'],
      ['POST', '/v1/organizations/me'],
      ['POST', '/v1/messages?x=1#y'],
      ['GET', '/v1/messages'],
      ['HEAD', '/'],
    ] as const) {
      expect(forwardedTarget(method, url), `${method} ${url}`).toBeUndefined();
    }
  });
});
