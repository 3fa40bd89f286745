/**
 * From the Workloads page to a rollout: a filter written as a label selector selects as policy
 * does, and its button opens the Rollout page on the same selection, which keeps the selector
 * in the address. Debian's Chromium against a real control plane, as test/ui/ui.test.ts.
 *
 * Skipped, saying why, when /usr/bin/chromium is missing (`apt-get install -y chromium`).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { OWNER_KEY, testServer, type TestServer } from '../support/server.js';
import { uiDirectory } from '../../src/server/ui.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = resolve('test-artifacts/ui');
type Attributes = { getAttribute(name: string): string | null };
const skipReason = existsSync(CHROMIUM)
  ? null
  : `Chromium is not installed at ${CHROMIUM} (apt-get install -y chromium)`;
if (skipReason) console.warn(`SKIPPED browser tests: ${skipReason}`);

const names = (page: Page, testId: string) =>
  page
    .getByTestId(testId)
    .evaluateAll((els: Attributes[]) => els.map((e) => e.getAttribute('data-name') ?? ''));

describe.skipIf(skipReason !== null)('the Workloads page opens a rollout of its filter', () => {
  let server: TestServer;
  let base: string;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    if (!existsSync(join(uiDirectory(), 'index.html')))
      execFileSync(resolve('node_modules/.bin/vite'), ['build', 'ui', '--logLevel', 'warn'], {
        stdio: 'inherit',
      });
    server = await testServer('sqlite');
    for (const [name, address, app, env] of [
      ['shop-prod-1', '10.1.0.1', 'shop', 'prod'],
      ['shop-prod-2', '10.1.0.2', 'shop', 'prod'],
      ['shop-test-1', '10.1.0.3', 'shop', 'test'],
      ['shopping-prod-1', '10.1.0.4', 'shopping', 'prod'],
    ] as const) {
      const r = await server.call({
        method: 'POST',
        url: '/api/v1/workloads',
        payload: {
          name,
          addresses: [address],
          labels: { app, env },
          managed: true,
          mode: 'visibility',
        },
      });
      expect(r.statusCode, r.body).toBe(201);
    }
    base = await server.app.listen({ port: 0, host: '127.0.0.1' });
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
    });
    page = await (await browser.newContext({ viewport: { width: 1440, height: 900 } })).newPage();
    page.setDefaultTimeout(30_000);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('filters by selector and rolls out exactly those workloads', async () => {
    await page.goto(`${base}/`);
    await page.getByTestId('signin-key').fill(OWNER_KEY);
    await page.getByTestId('signin-submit').click();
    await page.getByTestId('nav-workloads').click();
    await page.getByTestId('workload-row').first().waitFor();

    // Plain text filters by text, and is no selection to roll out.
    await page.getByTestId('workloads-filter').fill('shop');
    expect(await names(page, 'workload-row')).toHaveLength(4);
    expect(await page.getByTestId('workloads-rollout').isDisabled()).toBe(true);

    // A selector selects as policy does: app=shop is not app=shopping.
    await page.getByTestId('workloads-filter').fill('app=shop, env=prod');
    await expect.poll(() => names(page, 'workload-row')).toEqual(['shop-prod-1', 'shop-prod-2']);
    expect(await page.getByTestId('workloads-rollout').textContent()).toBe('Roll out 2 workloads');
    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'workloads-selector.png') });

    await page.getByTestId('workloads-rollout').click();
    await page.getByTestId('rollout-workload').first().waitFor();
    expect(new URL(page.url()).pathname).toBe('/rollout');
    expect(new URL(page.url()).searchParams.get('selector')).toBe('app=shop,env=prod');
    expect(await page.getByTestId('rollout-selector').inputValue()).toBe('app=shop,env=prod');
    expect((await names(page, 'rollout-workload')).sort()).toEqual(['shop-prod-1', 'shop-prod-2']);

    // Another selection is kept in the address too, so a reload shows it.
    await page.getByTestId('rollout-selector').fill('app=shop');
    await page.getByTestId('rollout-apply').click();
    await expect.poll(() => new URL(page.url()).searchParams.get('selector')).toBe('app=shop');
    await page.reload();
    await page.getByTestId('rollout-workload').first().waitFor();
    expect((await names(page, 'rollout-workload')).sort()).toEqual([
      'shop-prod-1',
      'shop-prod-2',
      'shop-test-1',
    ]);
  }, 120_000);
});
