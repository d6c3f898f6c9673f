// A real headless Chromium for the viewer's tests (Debian's `chromium`, driven by
// playwright-core). Without the networking flags Chromium tries to reach hosts this
// machine cannot.
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Whether the browser is installed; says so once, naming the test file, when it is not. */
export function browserAvailable(testFile: string): boolean {
  const found = existsSync(CHROMIUM);
  if (!found) console.warn(`${testFile}: ${CHROMIUM} is missing (apt-get install chromium); skipping the browser tests`);
  return found;
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
}
