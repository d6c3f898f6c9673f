// Links node_modules/.bin/agentq to bin/agentq.js in a checkout, so `npx agentq ...` there
// runs this checkout's command at once. npm links the bins of dependencies only; without
// this link npx looked the name up, installed the checkout into its own cache and built
// it again (~24 s), and `kill $!` on `npx agentq worker &` stopped npx, not the worker.
// Runs in `prepare` (npm install / npm ci in the checkout); a package installed as a
// dependency gets its bin from npm as usual.
import { mkdirSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const binDir = path.join(root, 'node_modules', '.bin');
const link = path.join(binDir, 'agentq');
const target = path.relative(binDir, path.join(root, 'bin', 'agentq.js'));

let current;
try {
  current = readlinkSync(link);
} catch {
  current = undefined;
}
if (current !== target) {
  mkdirSync(binDir, { recursive: true });
  rmSync(link, { force: true });
  symlinkSync(target, link);
}
