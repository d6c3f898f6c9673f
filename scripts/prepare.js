// `prepare`: builds dist/ and links node_modules/.bin/agentq (scripts/linkBin.js) when the
// checkout is installed (npm install / npm ci). Not when npx installs the checkout into
// its own cache to run `npx agentq` there (npm_command=exec): that install is a link to
// this very directory, built already; building again took ~23 s on every first call.
import { execFileSync } from 'node:child_process';
import process from 'node:process';

if (process.env.npm_command === 'exec') process.exit(0);
execFileSync('npm', ['run', 'build'], { stdio: 'inherit' });
await import('./linkBin.js');
