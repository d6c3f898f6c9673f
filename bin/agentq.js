#!/usr/bin/env node
// The package bin: runs the compiled CLI. `npm ci` / `npm install` build dist/ through
// the `prepare` script, so this works from a fresh clone.
// `npm run build` also bundles the CLI into one script with V8's code cache of it
// (dist/bundle/, scripts/bundleCli.js): a start then neither loads ~800 files nor
// compiles them, which more than halves the start-up time of a worker. The bundle is used
// when it is at least as new as dist/cli/main.js (a bare `tsc` after it makes it stale:
// then dist/ runs, as tsc built it).
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, URL } from 'node:url';
import path from 'node:path';
import vm from 'node:vm';

const bundle = fileURLToPath(new URL('../dist/bundle/agentq-cli.js', import.meta.url));

function bundleIsCurrent() {
  const mtime = (file) => statSync(file, { throwIfNoEntry: false })?.mtimeMs;
  const bundled = mtime(bundle);
  const compiled = mtime(fileURLToPath(new URL('../dist/cli/main.js', import.meta.url)));
  return bundled !== undefined && (compiled === undefined || bundled >= compiled);
}

/** The bundle's exports: its one function expression compiled with the code cache (V8 ignores a cache that does not match). */
function loadBundle() {
  let cachedData;
  try {
    cachedData = readFileSync(`${bundle}.cache`);
  } catch {
    // No cache (this Node did not accept one at build time): compiled as usual.
  }
  const script = new vm.Script(readFileSync(bundle, 'utf8'), { filename: bundle, ...(cachedData ? { cachedData } : {}) });
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(bundle), module, bundle, path.dirname(bundle));
  return module.exports;
}

const { main } = bundleIsCurrent() ? loadBundle() : await import('../dist/cli/main.js');

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exitCode = 1;
  },
);
