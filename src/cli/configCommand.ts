// `agentq config`: the effective configuration (secrets redacted) or, with --markdown,
// the table of every variable that the README carries.
import { configVariables, redactUrl, type Config } from '../config.js';

/** Renders the documentation table from the schema itself, so it cannot drift. */
export function configMarkdownTable(): string {
  const rows = Object.entries(configVariables).map(([name, v]) => {
    const parsed = v.schema.safeParse(undefined);
    const value: unknown = parsed.success ? parsed.data : undefined;
    const shown =
      value === undefined
        ? '(unset)'
        : Array.isArray(value)
          ? value.length === 0
            ? '(empty)'
            : value.join(',')
          : String(value);
    return `| \`${name}\` | \`${shown}\` | ${v.doc} |`;
  });
  return ['| Variable | Default | Meaning |', '|---|---|---|', ...rows].join('\n');
}

/** The effective configuration without secrets. */
export function describeConfig(config: Config): Record<string, unknown> {
  return {
    databaseUrl: redactUrl(config.databaseUrl),
    redisUrl: redactUrl(config.redisUrl),
    queueName: config.queueName,
    concurrency: config.concurrency,
    workspaceRoot: config.workspaceRoot,
    claudePath: config.claudePath,
    logLevel: config.logLevel,
    cli: { ...config.cli, env: Object.keys(config.cli.env).sort() },
    store: config.store,
    worker: config.worker,
    api: { ...config.api, keys: config.api.keys.map((k) => ({ token: '***', tenant: k.tenant })) },
    anthropic: { apiKey: config.anthropic.apiKey ? '***' : undefined, baseUrl: config.anthropic.baseUrl },
    model: config.model,
  };
}
