import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests spawn real processes (the real CLI, the fake CLI) and talk to real Postgres
    // and Redis; each file isolates itself, so files may run in parallel.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Creates one migrated template database per run; each test file clones its own.
    globalSetup: ['test/globalSetup.ts'],
  },
});
