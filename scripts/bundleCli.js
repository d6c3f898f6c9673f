// Bundles the command line (dist/cli/main.js and every command module it imports lazily)
// into one script, dist/bundle/agentq-cli.js, with V8's code cache of it next to it
// (agentq-cli.js.cache). bin/agentq.js compiles the script with that cache, so a process
// neither resolves and reads ~800 files (724 from node_modules) nor parses and compiles them:
// the cold start of ephemeral workers (`npm run bench -- --filter ephemeral`).
// Runs after tsc in `npm run build`; bin/agentq.js uses the bundle when it is at least as
// new as dist/cli/main.js, else dist/ as tsc built it. The library (dist/index.js) is not
// bundled.
//
// The script is one function expression, `(function (exports, require, module, __filename,
// __dirname) { ...CommonJS bundle... })`, which bin/agentq.js compiles with vm.Script and
// calls. It is not a module: nothing else should import it.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const out = path.join(dist, 'bundle');
const SCRIPT = 'agentq-cli.js';
// Written next to the final directory, then swapped in, so a process starting during a
// build sees either the old bundle or the new one (or none: then it uses dist/).
const tmp = path.join(dist, `.bundle-${process.pid}`);

/**
 * pg asks at load time whether it runs in a Cloudflare Worker; on Node 20 (no `navigator`)
 * the check constructs a `Response`, which loads Node's whole fetch implementation (undici,
 * ~10-15 ms of every start). This bundle only ever runs on Node, so the answer is no.
 */
const pgOnNode = {
  name: 'pg-on-node',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/]pg[\\/]lib[\\/]stream\.js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      const patched = source.replace(/function isCloudflareRuntime\(\) \{/, 'function isCloudflareRuntime() {\n  return false;');
      const warnings = patched === source ? [{ text: 'pg/lib/stream.js changed: its Cloudflare check is not skipped (start-up is ~10 ms slower, nothing else)' }] : [];
      return { contents: patched, loader: 'js', warnings };
    });
  },
};

/**
 * Class names that libraries compare at run time (`err.name == 'DelayedError'` in bullmq,
 * where `name` comes from `this.constructor.name`; ioredis's `constructor.name ===
 * 'Cluster'`). Bundling renames a class only when two of the same name meet in one scope
 * (`DelayedError2`); that would break these comparisons, so it fails the build.
 */
const COMPARED_CLASS_NAMES = ['DelayedError', 'UnrecoverableError', 'WaitingChildrenError', 'WaitingError', 'RateLimitError', 'Cluster'];

function checkClassNames(source) {
  const hit = new RegExp(String.raw`\bclass (${COMPARED_CLASS_NAMES.join('|')})\d+\b`).exec(source);
  if (hit) throw new Error(`class ${hit[1]} was renamed to ${hit[0].slice(6)} in the bundle; libraries compare its name (rename the colliding class)`);
}

/**
 * V8's code cache of the whole script, every function compiled (not only those a start
 * happens to call), as bin/agentq.js compiles it. V8 checks the cache against its own
 * version, its flags and the source, and ignores a cache that does not match (then the
 * script is compiled as usual), so a cache from another Node version costs nothing but
 * the time it saves. The script is compiled under its final name (`finalFile`), which the
 * cache keeps for stack traces. `--no-lazy` holds only while this process compiles: the cache is
 * tagged with the default flags a worker runs with, which a fresh process checks below.
 */
function writeCodeCache(file, finalFile) {
  const source = readFileSync(file, 'utf8');
  v8.setFlagsFromString('--no-lazy');
  let script;
  try {
    // Compiled under the name it runs under: the cache keeps the script's name, which stack traces show.
    script = new vm.Script(source, { filename: finalFile });
  } finally {
    v8.setFlagsFromString('--lazy');
  }
  writeFileSync(`${file}.cache`, script.createCachedData());
  const check = `const fs = require('node:fs'); const vm = require('node:vm'); const f = process.argv[1];
    const s = new vm.Script(fs.readFileSync(f, 'utf8'), { filename: f, cachedData: fs.readFileSync(f + '.cache') });
    process.stdout.write(String(s.cachedDataRejected));`;
  const rejected = execFileSync(process.execPath, ['-e', check, file], { encoding: 'utf8' });
  if (rejected !== 'false') {
    rmSync(`${file}.cache`, { force: true });
    process.stderr.write('bundling the CLI: this Node does not accept the code cache made for it; the bundle runs without one (~60-90 ms slower start)\n');
  }
}

/**
 * vm.Script runs the bundle without a loader for `import()`: every lazy import must be
 * bundled (esbuild turns it into a call), so none may point at an external package.
 */
function checkNoExternalImports(metafile) {
  for (const output of Object.values(metafile.outputs)) {
    const dynamic = output.imports.find((i) => i.kind === 'dynamic-import' && i.external);
    if (dynamic) throw new Error(`import('${dynamic.path}') of an external package cannot run in the bundle; import it statically or bundle it`);
  }
}

rmSync(tmp, { recursive: true, force: true });
try {
  const file = path.join(tmp, SCRIPT);
  const result = await build({
    absWorkingDir: root,
    entryPoints: [path.join(dist, 'cli', 'main.js')],
    bundle: true,
    // CommonJS in one function: what vm.Script compiles with a code cache (Node 20 has
    // no code cache for ES modules). Lazy `import()`s of the commands become calls.
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    // ES module builds of packages that ship both (smaller, better tree-shaken).
    mainFields: ['module', 'main'],
    // Loaded from node_modules at run time: optional native add-ons, and the HTTP server's
    // packages, which serve files from their own directories (Swagger UI, Bull Board) and
    // are not on the worker's path anyway.
    external: ['pg-native', 'msgpackr-extract', 'fastify', '@fastify/*', '@bull-board/*'],
    // No keepNames: it wraps every function and class (~35 ms more per start, measured).
    // Class names stay as written unless two collide; checkClassNames() guards the ones
    // libraries compare.
    define: { 'import.meta.url': '__agentqImportMetaUrl' },
    banner: {
      // Strict, as ES modules are (and as the code is when tsc's output runs).
      js: "(function (exports, require, module, __filename, __dirname) { 'use strict'; const __agentqImportMetaUrl = require('node:url').pathToFileURL(__filename).href;",
    },
    footer: { js: '})' },
    // Maps point at dist/ and node_modules (for `node --enable-source-maps`) without copying them.
    sourcemap: true,
    sourcesContent: false,
    outfile: file,
    logLevel: 'warning',
    plugins: [pgOnNode],
    metafile: true,
  });
  checkNoExternalImports(result.metafile);
  checkClassNames(readFileSync(file, 'utf8'));
  writeCodeCache(file, path.join(out, SCRIPT));
  const old = path.join(dist, `.bundle-old-${process.pid}`);
  mkdirSync(out, { recursive: true });
  renameSync(out, old);
  renameSync(tmp, out);
  rmSync(old, { recursive: true, force: true });
} catch (err) {
  rmSync(tmp, { recursive: true, force: true });
  process.stderr.write(`bundling the CLI failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
