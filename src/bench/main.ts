// `npm run bench -- [--filter NAME] [--json] [--cli VERSION|all]`: runs the benchmarks whose
// name contains NAME. With --json each figure is one JSON line on stdout; notes go to
// stderr. `--cli` picks the real CLI of the benchmarks that run it (default: the pinned
// one); `all` runs each of them once per tested version, one after the other, and names
// the figures of other versions `<figure>@<version>`, so both sit side by side.
import { parseArgs } from 'node:util';
import { installedCliPath, PINNED_CLI_VERSION, TESTED_CLI_VERSIONS } from '../runner/cliVersion.js';
import { ephemeralBench } from './ephemeral.js';
import type { Benchmark, Figure } from './harness.js';
import { runnerOverhead } from './runnerOverhead.js';
import { sandboxOverhead } from './sandboxOverhead.js';
import { sdkStoreBench } from './sdkStore.js';
import { realCliTaxBench } from './realCliTax.js';
import { storeBench } from './store.js';
import { turnBench } from './turn.js';
import { warmBench } from './warm.js';
import { workspaceBench } from './workspace.js';

export const benchmarks: readonly Benchmark[] = [runnerOverhead, sandboxOverhead, storeBench, turnBench, realCliTaxBench, ephemeralBench, sdkStoreBench, warmBench, workspaceBench];

function formatTable(figures: Figure[]): string {
  const rows = figures.map((f) => [f.bench, `${f.value} ${f.unit}`, f.baseline === null ? '-' : `${f.baseline}`, f.target]);
  const head = ['figure', 'value', 'baseline (same run)', 'target'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export async function runBench(argv: string[], env: Readonly<Record<string, string | undefined>>): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { filter: { type: 'string' }, json: { type: 'boolean', default: false }, cli: { type: 'string', default: PINNED_CLI_VERSION } },
    strict: true,
  });
  const selected = benchmarks.filter((b) => !values.filter || b.name.includes(values.filter));
  if (selected.length === 0) {
    process.stderr.write(`no benchmark matches --filter ${values.filter}; known: ${benchmarks.map((b) => b.name).join(', ')}\n`);
    return 2;
  }
  if (env.NODE_EXTRA_CA_CERTS) {
    process.stderr.write('note: NODE_EXTRA_CA_CERTS is set; every Node child process starts slower (~2.6x measured here)\n');
  }
  const versions = values.cli === 'all' ? TESTED_CLI_VERSIONS : [values.cli];
  const unknown = versions.find((v) => !TESTED_CLI_VERSIONS.includes(v));
  if (unknown !== undefined) {
    process.stderr.write(`--cli ${unknown}: must be one of ${TESTED_CLI_VERSIONS.join(', ')} or all\n`);
    return 2;
  }
  const log = (text: string) => process.stderr.write(`  ${text}\n`);
  const all: Figure[] = [];
  for (const b of selected) {
    for (const version of b.realCli ? versions : [PINNED_CLI_VERSION]) {
      process.stderr.write(`bench ${b.name}${b.realCli ? ` (CLI ${version})` : ''}: ${b.description}\n`);
      const figures = (await b.run({ log, cli: { version, path: installedCliPath(version) } })).map((f) =>
        version === PINNED_CLI_VERSION ? f : { ...f, bench: `${f.bench}@${version}` },
      );
      all.push(...figures);
      if (values.json) for (const f of figures) process.stdout.write(`${JSON.stringify(f)}\n`);
    }
  }
  if (!values.json) process.stdout.write(`${formatTable(all)}\n`);
  return 0;
}

runBench(process.argv.slice(2), process.env).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
