// vitest globalSetup: one migrated template database per test run, dropped at the end.
// Test files clone it with createTestDatabase() (test/helpers/db.ts).
import type { TestProject } from 'vitest/node';
import { createTemplateDatabase, dropDatabase } from './helpers/db.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const template = await createTemplateDatabase();
  project.provide('agentqTemplateDatabase', template);
  return async () => {
    await dropDatabase(template);
  };
}
