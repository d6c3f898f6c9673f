// The transcript viewer and the queue dashboard in a real headless Chromium (Debian's
// `chromium` package, driven by playwright-core): log in with a key, open a conversation,
// watch a running turn fill in live, open the dashboard. Skips, saying so, where no
// browser is installed (.ci/run installs it).
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi, type Api } from '../src/api/server.js';
import { createWorker, type TurnWorker } from '../src/worker/worker.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { waitUntil } from './helpers/processes.js';
import { browserAvailable, launchBrowser } from './helpers/browser.js';

const KEY = 'viewer-test-key-0123456789';
const OTHER_KEY = 'other-tenant-key-0123456789';
const hasBrowser = browserAvailable('viewer.browser.test');

describe.skipIf(!hasBrowser)('viewer and dashboard in a browser', () => {
  let t: TestAgentq;
  let api: Api;
  let worker: TurnWorker;
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    t = await createTestAgentq({ AGENTQ_API_KEYS: `${KEY}=default,${OTHER_KEY}=other`, AGENTQ_API_RATE_LIMIT: '0' });
    api = await buildApi(t.config);
    base = await api.app.listen({ host: '127.0.0.1', port: 0 });
    worker = createWorker(t.config, { concurrency: 2 });
    await worker.start();
    browser = await launchBrowser();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await worker?.stop({ graceMs: 0 });
    await api?.close();
    await t?.cleanup();
  });

  it('logs in, lists conversations and turns, and shows a running turn live until its result', async () => {
    const { client } = api.deps;
    const first = await client.enqueueTurn({ conversationId: 'ticket-viewer', prompt: '#fake {"reply":"first answer from the agent"}\nhello' });
    await client.waitForTurn(first.turnId, 20_000);

    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(`${base}/viewer`);
    // No session yet: the key form, and nothing else (no links into pages that would refuse).
    await page.locator('#key').waitFor({ state: 'visible', timeout: 10_000 });
    expect(await page.locator('header a').evaluateAll((links) => links.filter((a) => (a as unknown as { offsetParent: unknown }).offsetParent !== null).length)).toBe(0);
    expect(await page.locator('#app').isVisible()).toBe(false);
    await page.locator('#key').fill(KEY);
    await page.locator('#login-form button').click();
    await page.locator('a[href="/admin/queues"]').waitFor({ state: 'visible', timeout: 10_000 });
    await page.locator('[data-conversation="ticket-viewer"]').click();
    await page.locator(`[data-turn="${first.turnId}"]`).click();
    await expect.poll(() => page.locator('#transcript .event.result').textContent(), { timeout: 15_000 }).toContain('first answer from the agent');
    // The turn's prompt heads its transcript.
    await expect.poll(() => page.locator('#transcript .event').first().textContent(), { timeout: 10_000 }).toContain('hello');
    expect(await page.locator('#transcript .event').first().getAttribute('data-type')).toBe('prompt');

    // A slow turn: the init event arrives at once, the result ~4 s later.
    const slow = await client.enqueueTurn({
      conversationId: 'ticket-viewer',
      prompt: '#fake {"delayMs":4000,"reply":"slow second answer"}\nand now?',
    });
    await waitUntil(async () => (await client.getTurn(slow.turnId))?.status === 'running', 'the slow turn runs', 15_000);
    await page.locator(`[data-turn="${slow.turnId}"]`).click({ timeout: 10_000 });
    await page.locator('#transcript .event[data-type="init"]').waitFor({ timeout: 10_000 });
    // Seen while the turn is still running: the page is live, not a replay after the fact.
    expect((await client.getTurn(slow.turnId))?.status).toBe('running');
    expect(await page.locator('#transcript .event.result').count()).toBe(0);
    await expect.poll(() => page.locator('#transcript .event.result').textContent(), { timeout: 15_000 }).toContain('slow second answer');
    await page.locator('#transcript .event[data-type="end"]').waitFor({ timeout: 15_000 });
    expect(await page.locator('#transcript .event[data-type="end"]').textContent()).toBe('turn succeeded');
    // Each event once, even though the stream switched from stored to live.
    expect(await page.locator('#transcript .event[data-type="init"]').count()).toBe(1);

    const dir = path.join(os.tmpdir(), 'agentq-screenshots');
    mkdirSync(dir, { recursive: true });
    const shot = path.join(dir, 'viewer.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.info(`viewer screenshot: ${shot}`);
    // A turn whose tool calls the CLI refused says so, in the list and under the transcript.
    const denied = await client.enqueueTurn({ conversationId: 'ticket-viewer', prompt: '#fake {"reply":"could not write","deniedTool":"Write"}\nwrite notes' });
    await client.waitForTurn(denied.turnId, 20_000);
    await page.locator(`[data-turn="${denied.turnId}"]`).click({ timeout: 10_000 });
    await expect.poll(() => page.locator(`[data-turn="${denied.turnId}"] .status.denied`).textContent(), { timeout: 10_000 }).toBe('every tool refused');
    await expect.poll(() => page.locator('#transcript .event.denied').textContent(), { timeout: 15_000 }).toMatch(/Every tool call was refused.*Write.*permissionMode/);

    expect(pageErrors).toEqual([]);
    await page.close();
  }, 90_000);

  it('opens the queue dashboard for an admin tenant and refuses another tenant', async () => {
    const page = await browser.newPage();
    const login = async (key: string) =>
      page.evaluate(
        async (k) => (await fetch('/admin/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key: k }) })).status,
        key,
      );
    await page.goto(`${base}/viewer`);
    expect(await login(KEY)).toBe(204);
    await page.goto(`${base}/admin/queues`);
    // Bull Board renders the queue by name.
    await page.getByText(t.config.queueName, { exact: true }).first().click({ timeout: 20_000 });
    // The queue's page: its job states as tabs.
    await page.getByText('Completed', { exact: false }).first().waitFor({ timeout: 20_000 });
    const shot = path.join(os.tmpdir(), 'agentq-screenshots', 'dashboard.png');
    await page.screenshot({ path: shot });
    console.info(`dashboard screenshot: ${shot}`);

    expect(await login(OTHER_KEY)).toBe(204);
    const denied = await page.goto(`${base}/admin/queues`);
    expect(denied?.status()).toBe(403);
    // A page that says why, not a JSON problem.
    expect(denied?.headers()['content-type']).toMatch(/^text\/html/);
    expect(await page.locator('h1').textContent()).toBe('The queue dashboard is for admin tenants');
    expect(await page.locator('body').textContent()).toContain('AGENTQ_API_ADMIN_TENANTS');
    await page.close();

    // Logged out: a page that says to log in, with the way there.
    const fresh = await browser.newPage();
    const loggedOut = await fresh.goto(`${base}/admin/queues`);
    expect(loggedOut?.status()).toBe(401);
    expect(await fresh.locator('h1').textContent()).toBe('Log in first');
    await fresh.locator('a[href="/viewer"]').click();
    await fresh.locator('#key').waitFor({ state: 'visible', timeout: 10_000 });
    await fresh.close();
  }, 60_000);
});
