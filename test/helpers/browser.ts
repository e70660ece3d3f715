/**
 * Real headless Chromium for browser tests: Debian's `chromium` driven by playwright-core.
 * The project's own setup (scripts/ensure-chromium.sh) installs it where it is missing; if that is
 * impossible here (no root, no registry) the caller gets `undefined` and says why it skips.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

let installTried = false;

/** Returns the reason the browser cannot run here, or undefined when it can. */
export function chromiumUnavailable(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  if (!installTried) {
    installTried = true;
    const script = fileURLToPath(new URL('../../scripts/ensure-chromium.sh', import.meta.url));
    try {
      execFileSync('bash', [script], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000 });
    } catch (e) {
      return `chromium is missing and scripts/ensure-chromium.sh failed: ${(e as Error).message}`;
    }
  }
  return existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is missing`;
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-default-apps',
      '--disable-sync',
      '--no-first-run',
      '--disable-dev-shm-usage',
    ],
  });
}
