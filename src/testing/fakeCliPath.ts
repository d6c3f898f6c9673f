// Where the compiled fake CLI lives, for tests, benchmarks and the chaos suite. The path
// is the same whether this module runs from src/ (vitest) or dist/ (compiled).
import { fileURLToPath } from 'node:url';

/** The executable fake `claude` (dist/testing/fakeCli.js; `npm run build` makes it executable). */
export function fakeCliPath(): string {
  return fileURLToPath(new URL('../../dist/testing/fakeCli.js', import.meta.url));
}
