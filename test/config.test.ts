import { readFileSync } from 'node:fs';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { cliEnvironment, configVariables, describeConfig, loadConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { configMarkdownTable } from '../src/cli/configCommand.js';

describe('loadConfig', () => {
  it('fills every default from an empty environment and freezes the result', () => {
    const c = loadConfig({});
    expect(c.databaseUrl).toBe('postgres://postgres@127.0.0.1:5432/postgres');
    expect(c.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(c.queueName).toBe('agentq');
    expect(c.concurrency).toBe(4);
    expect(c.cli.maxLineBytes).toBe(16 * 1024 * 1024);
    expect(c.claudePath).toMatch(/claude-code[/\\]bin[/\\]claude\.exe$/);
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.cli)).toBe(true);
    expect(Object.isFrozen(c.cli.env)).toBe(true);
    expect(() => {
      (c as { concurrency: number }).concurrency = 9;
    }).toThrow(TypeError);
  });

  it('coerces numbers and treats empty strings as unset', () => {
    const c = loadConfig({ AGENTQ_CONCURRENCY: '12', AGENTQ_QUEUE: '', AGENTQ_CLI_IDLE_TIMEOUT_MS: '0' });
    expect(c.concurrency).toBe(12);
    expect(c.queueName).toBe('agentq');
    expect(c.cli.idleTimeoutMs).toBe(0);
  });

  it('names every invalid variable and what it allows', () => {
    let caught: unknown;
    try {
      loadConfig({
        DATABASE_URL: 'mysql://x',
        AGENTQ_CONCURRENCY: '0',
        AGENTQ_WORKSPACE_ROOT: 'relative/dir',
        AGENTQ_LOG_LEVEL: 'loud',
        AGENTQ_QUEUE: 'a/b',
      });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const e = caught as ConfigError;
    expect(e.name).toBe('ConfigError');
    expect([...e.variables].sort()).toEqual(
      ['AGENTQ_CONCURRENCY', 'AGENTQ_LOG_LEVEL', 'AGENTQ_QUEUE', 'AGENTQ_WORKSPACE_ROOT', 'DATABASE_URL'].sort(),
    );
    expect(e.message).toContain('AGENTQ_CONCURRENCY: must be >= 1');
    expect(e.message).toContain('AGENTQ_WORKSPACE_ROOT: must be an absolute path');
    expect(e.message).toContain('DATABASE_URL: must be a URL starting with postgres://');
  });

  it('parses the API keys, the sandbox host allow-list and the queue prefix, naming a bad one', () => {
    const c = loadConfig({
      AGENTQ_API_KEYS: 'key-of-sixteen-chars=acme, another-long-token-1=default',
      AGENTQ_SANDBOX_ALLOW_HOSTS: 'mcp.example.com:443,localhost:8080',
      AGENTQ_QUEUE_PREFIX: '{agentq}',
    });
    expect(c.api.keys).toEqual([
      { token: 'key-of-sixteen-chars', tenant: 'acme' },
      { token: 'another-long-token-1', tenant: 'default' },
    ]);
    expect(c.sandbox.allowHosts).toEqual([
      { host: 'mcp.example.com', port: 443 },
      { host: 'localhost', port: 8080 },
    ]);
    expect(c.queuePrefix).toBe('{agentq}');
    for (const [name, value] of [
      ['AGENTQ_API_KEYS', 'short=acme'],
      ['AGENTQ_SANDBOX_ALLOW_HOSTS', 'https://mcp.example.com'],
      ['AGENTQ_SANDBOX_ALLOW_HOSTS', 'mcp.example.com:70000'],
    ] as const) {
      expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`${name}: `));
    }
  });

  it('refuses to pass DATABASE_URL, REDIS_URL or AGENTQ_* to the CLI', () => {
    expect(() => loadConfig({ AGENTQ_CLI_ENV_ALLOW: 'FOO,DATABASE_URL' })).toThrow(/AGENTQ_CLI_ENV_ALLOW/);
    expect(() => loadConfig({ AGENTQ_CLI_ENV_ALLOW: 'AGENTQ_QUEUE' })).toThrow(/AGENTQ_CLI_ENV_ALLOW/);
  });
});

describe('the CLI environment allow-list', () => {
  const workerEnv = {
    PATH: '/usr/bin',
    DATABASE_URL: 'postgres://secret',
    REDIS_URL: 'redis://secret',
    AWS_SECRET_ACCESS_KEY: 'x',
    ANTHROPIC_API_KEY: 'sk-1',
    CLAUDE_CODE_MAX_RETRIES: '2',
    DISABLE_TELEMETRY: '1',
    HTTPS_PROXY: 'http://proxy',
    MY_TOOL_TOKEN: 't',
    AGENTQ_QUEUE: 'q',
  };

  it('keeps only allow-listed names and configured extras', () => {
    expect(cliEnvironment(workerEnv, ['MY_TOOL_TOKEN'])).toEqual({
      PATH: '/usr/bin',
      ANTHROPIC_API_KEY: 'sk-1',
      CLAUDE_CODE_MAX_RETRIES: '2',
      DISABLE_TELEMETRY: '1',
      HTTPS_PROXY: 'http://proxy',
      MY_TOOL_TOKEN: 't',
    });
  });

  it('never passes DATABASE_URL or REDIS_URL even if listed', () => {
    const env = cliEnvironment(workerEnv, ['DATABASE_URL', 'REDIS_URL']);
    expect(env).not.toHaveProperty('DATABASE_URL');
    expect(env).not.toHaveProperty('REDIS_URL');
  });

  it('loadConfig puts the configured key and base URL into the CLI environment', () => {
    const c = loadConfig({ ...workerEnv, ANTHROPIC_API_KEY: 'sk-2', ANTHROPIC_BASE_URL: 'http://127.0.0.1:9' });
    expect(c.cli.env.ANTHROPIC_API_KEY).toBe('sk-2');
    expect(c.cli.env.ANTHROPIC_BASE_URL).toBe('http://127.0.0.1:9');
    expect(c.cli.env).not.toHaveProperty('DATABASE_URL');
    expect(c.cli.env).not.toHaveProperty('AWS_SECRET_ACCESS_KEY');
  });
});

describe('the configuration table', () => {
  it('has one row per variable with its default', () => {
    const table = configMarkdownTable();
    for (const name of Object.keys(configVariables)) expect(table).toContain(`| \`${name}\` |`);
    expect(table).toContain('| `AGENTQ_CONCURRENCY` | `4` |');
  });
});

describe('`agentq config` (describeConfig)', () => {
  const apiKey = 'sk-ant-do-not-show-1';
  const token = 'key-of-sixteen-chars';
  const config = loadConfig({
    PATH: '/usr/bin:/bin',
    ANTHROPIC_API_KEY: apiKey,
    DATABASE_URL: 'postgres://u:db-password@db.example/agentq',
    REDIS_URL: 'redis://:redis-password@redis.example:6379',
    AGENTQ_API_KEYS: `${token}=acme`,
  });
  const described = describeConfig(config);

  it('shows every field of the configuration (a field summarised as a whole, like cli.env, counts)', () => {
    const missing: string[] = [];
    const walk = (value: object, shown: unknown, at: string): void => {
      if (shown === null || typeof shown !== 'object' || Array.isArray(shown)) return; // summarised
      for (const [key, inner] of Object.entries(value)) {
        if (!(key in shown)) missing.push(`${at}${key}`);
        else if (inner !== null && typeof inner === 'object' && !Array.isArray(inner)) walk(inner, (shown as Record<string, unknown>)[key], `${at}${key}.`);
      }
    };
    walk(config, described, '');
    expect(missing).toEqual([]);
    expect(described).toMatchObject({ queuePrefix: 'bull', sandbox: { mode: 'auto', allowHosts: [] } });
  });

  it('redacts the secrets: URL passwords, API keys, the CLI environment', () => {
    const text = JSON.stringify(described);
    for (const secret of [apiKey, token, 'db-password', 'redis-password']) expect(text).not.toContain(secret);
    expect(described).toMatchObject({
      databaseUrl: 'postgres://u:***@db.example/agentq',
      api: { keys: [{ token: '***', tenant: 'acme' }] },
      anthropic: { apiKey: '***' },
      cli: { env: Object.keys(config.cli.env).sort() },
    });
  });
});

describe('the config catalog', () => {
  it('documents each entry (what an editor shows on the Config field) with the variable it reads', () => {
    const source = ts.createSourceFile('config.ts', readFileSync(new URL('../src/config.ts', import.meta.url), 'utf8'), ts.ScriptTarget.Latest, true);
    const documented = new Map<string, string>();
    const visit = (node: ts.Node): void => {
      if (ts.isPropertyAssignment(node) && ts.isCallExpression(node.initializer) && node.initializer.expression.getText() === 'variable') {
        const [env] = node.initializer.arguments;
        const jsDoc = ts.getJSDocCommentsAndTags(node).map((d) => d.getText()).join('');
        if (env && ts.isStringLiteral(env)) documented.set(env.text, jsDoc);
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
    expect([...documented.keys()]).toEqual(Object.keys(configVariables));
    const wrong = [...documented].filter(([env, jsDoc]) => !jsDoc.includes(`\`${env}\``)).map(([env]) => env);
    expect(wrong).toEqual([]);
  });
});
