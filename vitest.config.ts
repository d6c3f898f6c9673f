import os from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests spawn real processes (the real CLI, the fake CLI) and talk to real Postgres
    // and Redis; each file isolates itself, so files may run in parallel.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Vitest's default (cores − 1) runs one file at a time on a 2-core machine, and most
    // files spend their time waiting on processes and databases: two at a time there
    // halves the suite's wall time.
    maxWorkers: Math.max(2, os.availableParallelism() - 1),
    // A worker process runs one file after another, keeping the modules it imported: each
    // file no longer pays for importing them again (on 2 cores the suite took 415 s against
    // 447-473 s). Test files therefore must not change process-wide state (environment
    // variables, prototypes, globals); none does, and each cleans up what it started.
    isolate: false,
    // Creates one migrated template database per run; each test file clones its own.
    globalSetup: ['test/globalSetup.ts'],
  },
});
