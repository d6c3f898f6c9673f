// `npm run build`: tsc into dist/, the fake CLI made executable, the command-line bundle
// (scripts/bundleCli.js). With --if-stale (npm run demo, bench, chaos, and before npm test)
// it does nothing when dist/ was built from the sources as they are now: it keeps a
// fingerprint of every input's path, size and modification time in dist/.build-stamp. A
// second `npm run demo` with nothing changed took 29 s, nearly all of it this build.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const STAMP = path.join(root, 'dist', '.build-stamp');
/** What the build reads: a change to any of these (or a file added or removed under src/) rebuilds. */
const INPUTS = ['src', 'tsconfig.json', 'tsconfig.build.json', 'package.json', 'package-lock.json', 'scripts/build.js', 'scripts/bundleCli.js'];

function fingerprint() {
  const hash = createHash('sha256');
  const visit = (rel) => {
    const full = path.join(root, rel);
    if (!existsSync(full)) return hash.update(`${rel}\0missing\n`);
    const st = statSync(full);
    hash.update(`${rel}\0${st.size}\0${st.mtimeMs}\n`);
    if (st.isDirectory()) for (const name of readdirSync(full).sort()) visit(path.join(rel, name));
  };
  for (const input of INPUTS) visit(input);
  return hash.digest('hex');
}

const before = fingerprint();
const built = existsSync(STAMP) && readFileSync(STAMP, 'utf8').trim() === before && existsSync(path.join(root, 'dist', 'bundle'));
if (process.argv.includes('--if-stale') && built) process.exit(0);

const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
run(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json']);
chmodSync(path.join(root, 'dist', 'testing', 'fakeCli.js'), 0o755);
run(process.execPath, [path.join(root, 'scripts', 'bundleCli.js')]);
// The fingerprint taken before building: a source changed during the build rebuilds next time.
writeFileSync(STAMP, `${before}\n`);
