// The viewer's approvals panel in a real headless Chromium (as test/viewer.browser.test.ts):
// the tenant's pending approvals listed with their input as text, allowed and denied with
// the page's buttons, an AskUserQuestion call answered with its choices, a 409 shown as
// "already decided". The approvals are stored directly (no worker runs the turns). The
// page's clock is paused, so its refresh runs only when the test moves the clock on.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildApi, type Api } from '../src/api/server.js';
import { requestApproval } from '../src/store/approvals.js';
import { getTurn } from '../src/store/turns.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { waitUntil } from './helpers/processes.js';
import { browserAvailable, launchBrowser } from './helpers/browser.js';

const KEY = 'viewer-test-key-0123456789';
const OTHER_KEY = 'other-tenant-key-0123456789';
const hasBrowser = browserAvailable('viewer.approvals.browser.test');

describe.skipIf(!hasBrowser)('the approvals panel in a browser', () => {
  let t: TestAgentq;
  let api: Api;
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    browser = await launchBrowser();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
  });

  // Each test its own agentq (database, queue) and API.
  beforeEach(async () => {
    t = await createTestAgentq({ AGENTQ_API_KEYS: `${KEY}=default,${OTHER_KEY}=other`, AGENTQ_API_RATE_LIMIT: '0' });
    api = await buildApi(t.config);
    base = await api.app.listen({ host: '127.0.0.1', port: 0 });
  }, 60_000);
  afterEach(async () => {
    await api?.close();
    await t?.cleanup();
  });

  /** A page with its clock paused (the panel refreshes only when the test runs the clock), logged in with KEY. */
  async function openViewer(pageErrors: string[]): Promise<Page> {
    const page = await browser.newPage();
    // A missing element fails the test in seconds, not after Playwright's 30 s.
    page.setDefaultTimeout(10_000);
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.clock.install();
    await page.clock.pauseAt(Date.now() + 1000);
    await page.goto(`${base}/viewer`);
    await page.locator('#key').fill(KEY);
    await page.locator('#login-form button').click();
    return page;
  }

  /** A pending approval of a queued turn (of a conversation of its own) of `tenantId`. */
  async function pendingApproval(tenantId: string, toolName: string, input: unknown): Promise<string> {
    const { client } = api.deps;
    const turn = await client.enqueueTurn({ conversationId: `approvals-${randomBytes(4).toString('hex')}`, tenantId, prompt: 'needs a person' });
    const row = await getTurn(client.db, turn.turnId);
    const approval = await requestApproval(client.db, {
      tenantId,
      conversationId: row!.conversationId,
      turnId: turn.turnId,
      toolUseId: `toolu_${randomBytes(8).toString('hex')}`,
      toolName,
      input,
    });
    return approval.id;
  }

  const statusOf = async (id: string) => (await api.deps.client.getApproval(id, 'default'))?.status;
  const listed = (page: Page) => page.locator('#approvals .approval').evaluateAll((items) => items.map((i) => (i as unknown as { dataset: { approval: string } }).dataset.approval));

  it('lists the pending approvals of the tenant as text and allows, answers and denies them', async () => {
    const { client } = api.deps;
    const bash = await pendingApproval('default', 'Bash', { command: 'echo hi' });
    const question = {
      question: 'Which colour?',
      header: 'Colour',
      options: [
        { label: 'Red', description: 'warm' },
        { label: 'Blue', description: 'cool' },
      ],
      multiSelect: false,
    };
    const ask = await pendingApproval('default', 'AskUserQuestion', { questions: [question] });
    const hostile = '<img src=x onerror="window.__injected = 1">';
    const write = await pendingApproval('default', 'Write', { file_path: 'notes.md', content: hostile });
    const othersApproval = await pendingApproval('other', 'Read', { file_path: '/not-yours' });

    const pageErrors: string[] = [];
    const page = await openViewer(pageErrors);
    await page.locator(`[data-approval="${bash}"]`).waitFor({ timeout: 10_000 });
    expect(await page.locator('#approvals-panel h2').textContent()).toBe('Pending approvals');

    // Newest first, the tenant's own only.
    expect(await listed(page)).toEqual([write, ask, bash]);
    const bashItem = page.locator(`[data-approval="${bash}"]`);
    expect(await bashItem.locator('strong').textContent()).toBe('Bash');
    const shownInput = async (item: typeof bashItem) => JSON.parse((await item.locator('pre.input').textContent()) ?? '') as unknown;
    expect(await bashItem.locator('pre.input').textContent()).toBe(JSON.stringify({ command: 'echo hi' }, null, 2));
    expect(await bashItem.textContent()).toMatch(/requested .+ · does not expire/);
    // The model's input is text: no element made of it, no script run.
    const writeItem = page.locator(`[data-approval="${write}"]`);
    expect(await shownInput(writeItem)).toEqual({ file_path: 'notes.md', content: hostile });
    expect(await writeItem.locator('pre.input').textContent()).toContain('"content": "<img src=x onerror=');
    expect(await page.locator('#approvals img').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as { __injected?: number }).__injected)).toBeUndefined();
    // The question with its options as radio buttons.
    const askItem = page.locator(`[data-approval="${ask}"]`);
    expect(await askItem.locator('legend').textContent()).toBe('Colour: Which colour?');
    expect(await askItem.locator('input[type=radio]').evaluateAll((inputs) => inputs.map((i) => (i as unknown as { value: string }).value))).toEqual(['Red', 'Blue']);
    expect(await askItem.locator('label').nth(1).textContent()).toBe(' Blue — cool');

    const shot = path.join(os.tmpdir(), 'agentq-screenshots', 'viewer-approvals.png');
    mkdirSync(path.dirname(shot), { recursive: true });
    await page.screenshot({ path: shot, fullPage: true });
    console.info(`approvals screenshot: ${shot}`);

    // Allow: stored as allowed, gone from the list.
    await bashItem.locator('button.allow').click();
    await waitUntil(async () => (await statusOf(bash)) === 'allowed', 'the Bash call is allowed');
    await expect.poll(() => listed(page), { timeout: 10_000 }).toEqual([write, ask]);
    expect(await page.locator('#approvals-note').textContent()).toBe('Bash: allowed');

    // A question is answered with the chosen label, not allowed without one.
    await askItem.locator('button.allow').click();
    expect(await page.locator('#approvals-note').textContent()).toBe('Choose an answer to each question first.');
    expect(await statusOf(ask)).toBe('pending');
    await askItem.locator('input[value="Blue"]').check();
    await askItem.locator('button.allow').click();
    await waitUntil(async () => (await statusOf(ask)) === 'allowed', 'the question is answered');
    expect(await client.getApproval(ask, 'default')).toMatchObject({ status: 'allowed', updatedInput: { questions: [question], answers: { 'Which colour?': 'Blue' } } });

    // A message being typed keeps its focus when a refresh drops another approval (decided elsewhere).
    const elsewhere = await pendingApproval('default', 'Read', { file_path: 'elsewhere.md' });
    await page.clock.runFor(3000);
    await expect.poll(() => listed(page), { timeout: 10_000 }).toEqual([elsewhere, write]);
    const typed = writeItem.locator('input.deny-message');
    await typed.click();
    await page.keyboard.type('not in ');
    await api.deps.client.decideApproval({ id: elsewhere, tenantId: 'default', decision: 'allow' });
    await page.clock.runFor(3000);
    await expect.poll(() => listed(page), { timeout: 10_000 }).toEqual([write]);
    await page.keyboard.type('this repository');
    expect(await typed.inputValue()).toBe('not in this repository');

    // Deny with that message for the agent.
    await writeItem.locator('button.deny').click();
    await waitUntil(async () => (await statusOf(write)) === 'denied', 'the Write call is denied');
    expect(await client.getApproval(write, 'default')).toMatchObject({ status: 'denied', message: 'not in this repository', decidedBy: 'api:default' });
    await expect.poll(() => page.locator('#approvals').textContent(), { timeout: 10_000 }).toBe('No pending approvals.');
    expect(await statusOf(othersApproval)).toBeUndefined();
    expect((await client.getApproval(othersApproval, 'other'))?.status).toBe('pending');

    expect(pageErrors).toEqual([]);
    await page.close();
  }, 60_000);

  it('refreshes the list on its own, answers several choices comma-joined, and shows a 409 as already decided', async () => {
    const { client } = api.deps;
    const pageErrors: string[] = [];
    const page = await openViewer(pageErrors);
    await expect.poll(() => page.locator('#approvals').textContent(), { timeout: 10_000 }).toBe('No pending approvals.');

    // Requested after the page loaded: listed at the next refresh, without a reload.
    const question = {
      question: 'Which checks?',
      header: 'Checks',
      options: [
        { label: 'lint', description: '' },
        { label: 'types', description: '' },
        { label: 'tests', description: '' },
      ],
      multiSelect: true,
    };
    const ask = await pendingApproval('default', 'AskUserQuestion', { questions: [question] });
    const bash = await pendingApproval('default', 'Bash', { command: 'rm -rf build' });
    await page.clock.runFor(3000);
    await expect.poll(() => listed(page), { timeout: 10_000 }).toEqual([bash, ask]);

    const askItem = page.locator(`[data-approval="${ask}"]`);
    expect(await askItem.locator('input[type=checkbox]').count()).toBe(3);
    await askItem.locator('input[value="lint"]').check();
    await askItem.locator('input[value="tests"]').check();
    await askItem.locator('button.allow').click();
    await waitUntil(async () => (await statusOf(ask)) === 'allowed', 'the question is answered');
    expect((await client.getApproval(ask, 'default'))?.updatedInput).toMatchObject({ answers: { 'Which checks?': 'lint, tests' } });

    // The page's refresh after that decision is over (nothing else refreshes while its clock is paused).
    await expect.poll(() => listed(page), { timeout: 10_000 }).toEqual([bash]);

    // Decided elsewhere while the page still shows it: the page's Allow gets 409.
    expect((await client.decideApproval({ id: bash, tenantId: 'default', decision: 'deny', message: 'decided elsewhere' })).outcome).toBe('decided');
    await page.locator(`[data-approval="${bash}"] button.allow`).click();
    await expect.poll(() => page.locator('#approvals-note').textContent(), { timeout: 10_000 }).toBe('Bash: already decided');
    await expect.poll(() => page.locator('#approvals').textContent(), { timeout: 10_000 }).toBe('No pending approvals.');
    expect(await client.getApproval(bash, 'default')).toMatchObject({ status: 'denied', message: 'decided elsewhere' });

    expect(pageErrors).toEqual([]);
    await page.close();
  }, 60_000);
});
