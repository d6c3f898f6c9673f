// `prepare`: builds dist/ when the checkout is installed (npm install / npm ci). Not when
// npx installs the checkout into its own cache to run `npx agentq` there
// (npm_command=exec): npm does that for a command the project's own package.json names as
// a bin, and that install is a link to this very directory, built already; building again
// took ~23 s on every first call of a clone.
import { execFileSync } from 'node:child_process';
import process from 'node:process';

if (process.env.npm_command === 'exec') process.exit(0);
execFileSync('npm', ['run', 'build'], { stdio: 'inherit' });
