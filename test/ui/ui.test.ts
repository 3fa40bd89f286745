/**
 * The web UI in a real browser: Debian's Chromium driven by playwright-core against a real
 * control plane (SQLite in a temp dir) serving the built UI. One security engineer's first
 * session: sign in, load the demo estate, read the map, drill into an app, open an edge's
 * flows, filter and export in the explorer, relabel a workload and see the map regroup.
 * Screenshots of the main pages land in test-artifacts/ui/.
 *
 * Skipped, saying why, when /usr/bin/chromium is missing (`apt-get install -y chromium`).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Core, EdgeSingular, NodeSingular } from 'cytoscape';
import type { Browser, Page } from 'playwright-core';
import { OWNER_KEY, testServer, type TestServer } from '../support/server.js';
import { uiDirectory } from '../../src/server/ui.js';

const CHROMIUM = '/usr/bin/chromium';
/** What the tests read of a DOM element (the test program has no DOM types). */
type Attributes = { getAttribute(name: string): string | null };
/** The UI puts its live graph here (see ui/src/components/Graph.tsx). */
type GraphWindow = { __bulkheadGraph?: Core };
const ARTIFACTS = resolve('test-artifacts/ui');
const skipReason = existsSync(CHROMIUM)
  ? null
  : `Chromium is not installed at ${CHROMIUM} (apt-get install -y chromium)`;
if (skipReason) console.warn(`SKIPPED browser tests: ${skipReason}`);

const CSV_HEADER =
  'source,source_labels,destination,destination_labels,proto,port,process,connections,blocked,bytes,first_seen,last_seen,decision,decided_by,draft_decision,draft_decided_by';

/** The graph is a canvas: tests find an element's drawn position through the live graph. */
async function drawnPosition(page: Page, id: string): Promise<{ x: number; y: number }> {
  const box = (await page.getByTestId('map-graph').boundingBox())!;
  const at = await page.evaluate((elementId) => {
    const graph = (globalThis as unknown as GraphWindow).__bulkheadGraph!;
    const element = graph.getElementById(elementId);
    if (element.empty()) throw new Error(`no element ${elementId} on the graph`);
    if (!element.isEdge()) return (element as NodeSingular).renderedPosition();
    // A third of the way along (the middle of a busy map is where edges cross).
    const edge = element as EdgeSingular;
    const from = edge.renderedSourceEndpoint();
    const to = edge.renderedTargetEndpoint();
    return { x: from.x + (to.x - from.x) / 3, y: from.y + (to.y - from.y) / 3 };
  }, id);
  return { x: box.x + at.x, y: box.y + at.y };
}

async function nodeIds(page: Page): Promise<string[]> {
  return page
    .getByTestId('map-node')
    .evaluateAll((els: Attributes[]) => els.map((e) => e.getAttribute('data-id') ?? ''));
}

async function edgePairs(page: Page): Promise<string[]> {
  return page
    .getByTestId('map-edge')
    .evaluateAll((els: Attributes[]) =>
      els.map((e) => `${e.getAttribute('data-source')} -> ${e.getAttribute('data-target')}`),
    );
}

/** Waits until the graph holds a node and the layout has settled. */
async function waitForNode(page: Page, id: string): Promise<void> {
  await page.waitForFunction(
    (nodeId) => {
      const graph = (globalThis as unknown as GraphWindow).__bulkheadGraph;
      return !!graph && graph.getElementById(nodeId).nonempty();
    },
    id,
    { timeout: 45_000 },
  );
  await page.waitForTimeout(300);
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}

describe.skipIf(skipReason !== null)('the web UI in Chromium', () => {
  let server: TestServer;
  let base: string;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    // `npm test` builds the UI first; a lone run of this file builds it if it is missing.
    if (!existsSync(join(uiDirectory(), 'index.html')))
      execFileSync(resolve('node_modules/.bin/vite'), ['build', 'ui', '--logLevel', 'warn'], {
        stdio: 'inherit',
      });
    await mkdir(ARTIFACTS, { recursive: true });
    server = await testServer('sqlite');
    server.app.bulkhead.flows.start();
    base = await server.app.listen({ port: 0, host: '127.0.0.1' });
    // A plain launch gives Chromium a fresh profile in a temp dir, removed on close.
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    const context = await browser.newContext({
      viewport: { width: 1440, height: 900 },
      acceptDownloads: true,
    });
    page = await context.newPage();
    page.setDefaultTimeout(30_000);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('signs in with an API key, refusing a wrong one', async () => {
    await page.goto(`${base}/`);
    await page.getByTestId('signin-key').fill('not-a-key');
    await page.getByTestId('signin-submit').click();
    await expect.poll(() => page.getByTestId('error').textContent()).toContain('not accepted');
    await shot(page, 'sign-in');

    await page.getByTestId('signin-key').fill(OWNER_KEY);
    await page.getByTestId('signin-submit').click();
    await page.getByTestId('sidebar').waitFor();
    expect(await page.getByTestId('page-map').isVisible()).toBe(true);
  }, 60_000);

  it('offers the demo estate on an empty map, and loading it draws the apps and their edges', async () => {
    await page.getByTestId('load-demo').waitFor();
    await shot(page, 'map-empty');
    await page.getByTestId('load-demo').click();
    await waitForNode(page, 'g:app=shop;env=prod');

    const nodes = await nodeIds(page);
    for (const app of ['shop', 'payments', 'crm', 'hr'])
      expect(nodes, `the ${app} app in prod`).toContain(`g:app=${app};env=prod`);
    expect(nodes).toContain('a:internet');
    const edges = await edgePairs(page);
    expect(edges).toContain('g:app=shop;env=prod -> g:app=payments;env=prod');
    expect(edges).toContain('a:internet -> g:app=shop;env=prod');
    // Thousands of flows, but one node per app and environment.
    expect(nodes.length).toBeLessThan(40);
    await shot(page, 'map');
  }, 90_000);

  it('drills into an app: double-clicking shop · prod shows its tiers inside it', async () => {
    const at = await drawnPosition(page, 'g:app=shop;env=prod');
    await page.mouse.dblclick(at.x, at.y);
    await waitForNode(page, 'g:app=shop;env=prod;role=web');
    const nodes = await nodeIds(page);
    for (const role of ['web', 'api', 'db'])
      expect(nodes).toContain(`g:app=shop;env=prod;role=${role}`);
    const parent = await page.evaluate(() =>
      (globalThis as unknown as GraphWindow)
        .__bulkheadGraph!.getElementById('g:app=shop;env=prod;role=api')
        .parent()
        .first()
        .id(),
    );
    expect(parent).toBe('g:app=shop;env=prod');
    expect(await edgePairs(page)).toContain(
      'g:app=shop;env=prod;role=web -> g:app=shop;env=prod;role=api',
    );
    await shot(page, 'map-expanded');
  }, 60_000);

  it('clicking an edge shows its services, flows and the rule that decides them', async () => {
    const edge = await page.evaluate(() => {
      const e = (globalThis as unknown as GraphWindow).__bulkheadGraph!.edges().filter((x) => {
        const d = x.data() as { source: string; target: string };
        return (
          d.source === 'g:app=shop;env=prod;role=web' && d.target === 'g:app=shop;env=prod;role=api'
        );
      });
      return e.first().id();
    });
    const at = await drawnPosition(page, edge);
    await page.mouse.click(at.x, at.y);
    const panel = page.getByTestId('edge-panel');
    await panel.waitFor();
    expect(await panel.locator('.panel-title').textContent()).toBe('web→api');
    await page.getByTestId('edge-flow').first().waitFor();
    const rules = await page.getByTestId('edge-flow-rule').allTextContents();
    expect(rules.length).toBeGreaterThan(0);
    expect(rules.every((r) => r.trim().length > 0)).toBe(true);
    expect(await page.getByTestId('edge-services').textContent()).toMatch(/\/tcp/);
    await page.getByTestId('traffic-chart').waitFor();
    await shot(page, 'map-edge');
  }, 60_000);

  it('the explorer filters by source and destination and exports the same rows as CSV', async () => {
    await page.getByTestId('nav-flows').click();
    await page.getByTestId('filter-src').fill('app=shop,env=prod');
    await page.getByTestId('filter-dst').fill('app=payments');
    await page.getByTestId('filter-apply').click();
    await expect
      .poll(async () => {
        const rows = await page.getByTestId('flow-row').allTextContents();
        return rows.length > 0 && rows.every((r) => r.includes('shop') && r.includes('payments'));
      })
      .toBe(true);
    await shot(page, 'flows');

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByTestId('export-csv').click(),
    ]);
    expect(download.suggestedFilename()).toMatch(/\.csv$/);
    const csv = await readFile(await download.path(), 'utf8');
    const lines = csv.trim().split(/\r?\n/);
    expect(lines[0]).toBe(CSV_HEADER);
    expect(lines.length).toBeGreaterThan(1);
    for (const line of lines.slice(1)) {
      expect(line).toContain('app=shop');
      expect(line).toContain('app=payments');
    }
  }, 60_000);

  it("the explorer shows the attempts an enforcing agent blocked beside a flow's connections", async () => {
    await page.getByTestId('nav-flows').click();
    await page.getByTestId('filter-src').fill('');
    await page.getByTestId('filter-dst').fill('app=shop,env=prod,role=web');
    await page.getByTestId('filter-port').fill('22/tcp');
    await page.getByTestId('filter-window').getByRole('radio', { name: '7d' }).click();
    await page.getByTestId('filter-apply').click();
    // The demo's ssh scans of shop's prod web tier, which enforces in full: every attempt
    // dropped and shown so; the admins' ssh from the jump hosts went through.
    const rowsByKind = async () => {
      const seen = { blockedWithAttempts: 0, other: 0, wrong: 0 };
      for (const row of await page.getByTestId('flow-row').all()) {
        const decision = (await row.locator('.badge').textContent())?.trim();
        const attempts = await row.getByTestId('flow-blocked').allTextContents();
        if (
          decision === 'Blocked' &&
          attempts.length === 1 &&
          /^[\d,]+ blocked$/.test(attempts[0]!)
        )
          seen.blockedWithAttempts++;
        else if (decision !== 'Blocked' && attempts.length === 0) seen.other++;
        else seen.wrong++;
      }
      return seen;
    };
    await expect
      .poll(
        async () => {
          const seen = await rowsByKind();
          return seen.blockedWithAttempts > 0 && seen.other > 0 && seen.wrong === 0;
        },
        { timeout: 20_000 },
      )
      .toBe(true);
    await shot(page, 'flows-blocked');
  }, 60_000);

  it('a label edit on the Workloads page changes the map grouping', async () => {
    await page.getByTestId('nav-workloads').click();
    const row = page.locator('[data-testid="workload-row"][data-name="shop-prod-web-1"]');
    await row.waitFor();
    await shot(page, 'workloads');
    await row.getByTestId('labels-edit').click();
    const input = row.getByTestId('labels-input');
    const labels = await input.inputValue();
    expect(labels).toContain('app=shop');
    await input.fill(labels.replace('app=shop', 'app=storefront'));
    await row.getByTestId('labels-save').click();
    await expect.poll(() => row.textContent()).toContain('storefront');

    await page.getByTestId('nav-map').click();
    await waitForNode(page, 'g:app=storefront;env=prod');
    expect(await nodeIds(page)).toContain('g:app=shop;env=prod');
  }, 60_000);

  it('shows the draft rulesets, provisioning and the audit log', async () => {
    await page.getByTestId('nav-rulesets').click();
    await page.getByTestId('draft-document').first().waitFor();
    expect(await page.getByTestId('ruleset-editor').inputValue()).toContain('kind: Ruleset');
    await shot(page, 'rulesets');

    // A ruleset naming a service that does not exist is refused, and the editor says why.
    await page.getByTestId('ruleset-new').click();
    await page
      .getByTestId('ruleset-editor')
      .fill(
        'kind: Ruleset\nname: broken\nrules:\n  - name: r\n    sources: {labels: {role: web}}\n    destinations: {labels: {role: api}}\n    services: [no-such-service]\n',
      );
    await page.getByTestId('ruleset-save').click();
    await expect
      .poll(() => page.getByRole('alert').first().textContent())
      .toMatch(/no-such-service/);
    await shot(page, 'rulesets-invalid');

    // Dropping shop's api-to-queue rule from the draft: saved, not yet enforced.
    await page.locator('[data-testid="draft-document"][data-key="Ruleset/shop"]').click();
    await page.getByTestId('editor-format').getByText('JSON').click();
    const shop = JSON.parse(await page.getByTestId('ruleset-editor').inputValue()) as {
      rules: { name: string }[];
    };
    shop.rules = shop.rules.filter((r) => r.name !== 'api-to-queue');
    await page.getByTestId('ruleset-editor').fill(JSON.stringify(shop, null, 2));
    await page.getByTestId('ruleset-save').click();
    await page.getByTestId('ruleset-saved').waitFor();

    // Provisioning shows what the draft would block of the traffic seen, then makes it version 2.
    // Generous waits: the preview and the roll-up share two cores with the rest of CI.
    await page.getByTestId('nav-provisioning').click({ timeout: 30_000 });
    await page.getByTestId('version').first().waitFor({ timeout: 30_000 });
    await expect
      .poll(() => page.getByTestId('impact').textContent(), { timeout: 30_000 })
      .toMatch(/shop-prod-api-\d.*shop-prod-queue-\d/);
    await shot(page, 'provisioning');
    await page.getByTestId('provision-message').fill('Queue access now goes through the broker');
    await page.getByTestId('provision-submit').click({ timeout: 60_000 });
    await page.getByTestId('provisioned').waitFor({ timeout: 60_000 });
    await expect
      .poll(() => page.getByTestId('version').first().textContent())
      .toMatch(/Version 2\s*active/);

    await page.getByTestId('nav-audit').click();
    await page.getByTestId('audit-row').first().waitFor();
    expect(await page.getByTestId('audit-table').textContent()).toContain('workload.update');
    await shot(page, 'audit');
  }, 180_000);
  it('generates rules from the traffic, writes them to the draft, and rolls a selection forward', async () => {
    // The generator: hr in prod at service granularity, previewed (a dry run) first.
    await page.getByTestId('nav-generator').click();
    await page.getByTestId('generator-scope').fill('app=hr,env=prod');
    await page.getByTestId('granularity').getByText('service', { exact: true }).click();
    await page.getByTestId('generator-window').getByText('30 days').click();
    await page.getByTestId('generator-preview').click();
    await page.getByTestId('generator-coverage').waitFor({ timeout: 60_000 });
    // Every flow observed in scope is allowed by the existing policy plus the draft.
    expect(await page.getByTestId('coverage-share').textContent()).toBe('100%');
    expect(await page.getByTestId('coverage-detail').textContent()).toMatch(
      /(\d[\d,]*) of \1 flows/,
    );
    const rules = page.getByTestId('generated-rule');
    await rules.first().waitFor();
    expect(await rules.count()).toBeGreaterThan(0);
    const first = await rules.first().textContent();
    expect(first).toMatch(/\/tcp|\/udp/);
    const ruleset = (await rules
      .first()
      .locator('td')
      .first()
      .locator('div')
      .first()
      .textContent())!;
    expect(await page.getByTestId('generator-yaml').textContent()).toContain('kind: Ruleset');
    await page
      .getByTestId('generator-coverage')
      .evaluate((el: { scrollIntoView(options: object): void }) =>
        el.scrollIntoView({ block: 'start' }),
      );
    await shot(page, 'generator');

    // Written to the draft: the Provisioning page shows the new ruleset as a pending change.
    await page.getByTestId('generator-write-submit').click();
    await page.getByTestId('generator-written').waitFor({ timeout: 60_000 });
    await page.getByTestId('generator-to-provisioning').click();
    await expect
      .poll(() => page.getByTestId('provision-preview').textContent(), { timeout: 60_000 })
      .toContain(`Ruleset/${ruleset}`);
    await page.getByTestId('simulate').waitFor({ timeout: 60_000 });
    await shot(page, 'provisioning-generated');

    // Rollout: crm in prod is in visibility; its next step is selective, and the flows the
    // active policy does not allow stand in the way.
    await page.getByTestId('nav-rollout').click();
    await page.getByTestId('rollout-selector').fill('app=crm,env=prod');
    await page.getByTestId('rollout-apply').click();
    await page.getByTestId('rollout-flow').first().waitFor({ timeout: 60_000 });
    const blocking = await page.getByTestId('rollout-flow').allTextContents();
    expect(blocking.every((r) => r.includes('crm-prod'))).toBe(true);
    const modes = await page
      .getByTestId('rollout-workload')
      .evaluateAll((els: Attributes[]) => els.map((e) => e.getAttribute('data-name') ?? ''));
    expect(modes.length).toBeGreaterThan(0);
    expect(modes.every((n) => n.startsWith('crm-prod-'))).toBe(true);
    expect(await page.getByTestId('rollout-move-start').textContent()).toContain('selective');
    await page.getByTestId('rollout-move-start').click();
    await page.getByTestId('rollout-confirm').waitFor();
    await shot(page, 'rollout');
    await page.getByTestId('rollout-confirm-submit').click();
    await page.getByTestId('rollout-moved').waitFor({ timeout: 60_000 });
    expect(await page.getByTestId('rollout-moved').textContent()).toMatch(
      new RegExp(`${modes.length} of ${modes.length} workloads`),
    );

    // The Workloads page shows the new mode.
    await page.getByTestId('nav-workloads').click();
    const row = page.locator(`[data-testid="workload-row"][data-name="${modes[0]}"]`);
    await row.waitFor();
    expect(await row.getByTestId('mode-select').inputValue()).toBe('selective');
  }, 240_000);
});
