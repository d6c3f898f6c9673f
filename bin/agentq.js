#!/usr/bin/env node
// The package bin: runs the compiled CLI. `npm ci` / `npm install` build dist/ through
// the `prepare` script, so this works from a fresh clone.
import { main } from '../dist/cli/main.js';

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exitCode = 1;
  },
);
