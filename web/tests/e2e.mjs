// The dashboard in a real headless Chromium (Debian's package, driven by playwright-core): sign
// in, open every page, see charts drawn from the demo data, read a definition, and check that a
// developer cannot reach another developer's page. Run by scripts/test-web against a running
// system holding the demo history.
//
// Environment: BASE_URL, OWNER_EMAIL, OWNER_PASSWORD, DEV_EMAIL, DEV_PASSWORD, OTHER_DEV_ID,
// CHROMIUM (default /usr/bin/chromium), SCREENSHOTS (a folder; optional).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) {
    console.error(`e2e: ${name} is not set`);
    process.exit(2);
  }
  return value;
};
const BASE = env('BASE_URL');
const shots = process.env.SCREENSHOTS;
if (shots) mkdirSync(shots, { recursive: true });

const failures = [];
let checks = 0;
function check(ok, what) {
  checks += 1;
  if (!ok) failures.push(what);
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
}

const browser = await chromium.launch({
  executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});

/** A signed-in page for one person. */
async function signedIn(email, password) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => failures.push(`script error: ${e.message}`));
  await page.goto(`${BASE}/`);
  await page.waitForSelector('form#signin');
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', password);
  await page.click('form#signin button[type=submit]');
  await page.waitForSelector('#nav:not([hidden])', { timeout: 15000 });
  return page;
}

/** Opens `hash` and waits until the page has rendered. */
async function open(page, hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.waitForFunction((h) => {
    const app = document.getElementById('app');
    return app.dataset.state === 'ready' && app.dataset.page === h.split('?')[0];
  }, hash, { timeout: 20000 });
}

/** The page's charts: each canvas's plotted points and painted pixels. */
async function charts(page) {
  // Chart.js sizes its canvases once the layout settles.
  await page.waitForFunction(() => [...document.querySelectorAll('#app canvas')].every((c) => c.width > 0 && c.height > 0), null, { timeout: 10000 })
    .catch(() => {});
  return page.$$eval('canvas', (canvases) => canvases.map((c) => {
    if (!c.width || !c.height) return { id: c.id, points: Number(c.dataset.points ?? 0), painted: 0 };
    const ctx = c.getContext('2d');
    const { data } = ctx.getImageData(0, 0, c.width, c.height);
    let painted = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted += 1;
    return { id: c.id, points: Number(c.dataset.points ?? 0), painted };
  }));
}

async function expectChartsDrawn(page, name, { min = 1 } = {}) {
  const drawn = await charts(page);
  const errors = await page.$$eval('#app .error', (e) => e.map((x) => x.textContent.trim()));
  check(errors.length === 0, `${name}: no error shown ${errors.length ? JSON.stringify(errors) : ''}`);
  check(drawn.length >= min, `${name}: at least ${min} chart(s) (found ${drawn.length})`);
  const undefined_ = await page.$$eval('#app .tile, #app .card:not([data-not-a-metric])',
    (boxes) => boxes.filter((b) => !b.querySelector('button.info')).map((b) => b.querySelector('.label, h3')?.textContent.trim()));
  check(undefined_.length === 0, `${name}: every metric shows its definition${undefined_.length ? ` (missing: ${undefined_.join(', ')})` : ''}`);
  const empty = drawn.filter((c) => c.points === 0 || c.painted < 500).map((c) => c.id);
  check(empty.length === 0, `${name}: every chart drawn from data${empty.length ? ` (empty: ${empty.join(', ')})` : ''}`);
  if (shots) await page.screenshot({ path: join(shots, `${name.replace(/[^a-z0-9]+/gi, '-')}.png`), fullPage: true });
}

try {
  // The owner: every page.
  const owner = await signedIn(env('OWNER_EMAIL'), env('OWNER_PASSWORD'));
  await owner.waitForFunction(() => document.getElementById('app').dataset.state === 'ready');
  await expectChartsDrawn(owner, 'overview', { min: 6 });
  const band = await owner.textContent('.tile[data-metric=band] .band').catch(() => null);
  check(['elite', 'high', 'medium', 'low'].includes(band?.trim()), `overview: a DORA band tile (${band})`);

  // A definition on click, and on hover (title).
  const info = owner.locator('.tile[data-metric=change_failure_rate] button.info');
  const title = await info.getAttribute('title');
  check(title?.includes('failed_deployments / deployments'), 'overview: the change failure rate\'s definition on hover');
  await info.click();
  await owner.waitForSelector('#definition:not([hidden])');
  const shown = await owner.textContent('#definition');
  check(shown.includes('change_failure_rate') && shown.includes('failed_deployments'), 'overview: the definition on click');

  await open(owner, '#/teams');
  const firstTeam = await owner.getAttribute('.list a', 'href');
  check(Boolean(firstTeam), 'teams: listed');
  await open(owner, firstTeam);
  await expectChartsDrawn(owner, 'team', { min: 4 });

  await open(owner, '#/repositories');
  await expectChartsDrawn(owner, 'repositories', { min: 2 });
  const repoRows = await owner.$$eval('table tbody tr', (rows) => rows.length);
  check(repoRows >= 1, `repositories: a row per repository (${repoRows})`);

  await open(owner, `#/developers/${env('OTHER_DEV_ID')}`);
  await expectChartsDrawn(owner, 'developer (as owner)', { min: 3 });

  await open(owner, `#/attendance?user=${env('OTHER_DEV_ID')}`);
  await expectChartsDrawn(owner, 'attendance', { min: 2 });

  await open(owner, '#/alerts?status=all');
  const alertRows = await owner.$$eval('table.alerts tbody tr', (rows) => rows.length).catch(() => 0);
  check(alertRows >= 1, `alerts: listed (${alertRows})`);
  await expectChartsDrawn(owner, 'alerts', { min: 1 });

  await open(owner, '#/admin');
  const headings = await owner.$$eval('#app h2', (h) => h.map((x) => x.textContent));
  check(['Dead letters', 'Sync jobs', 'Cron runs'].every((h) => headings.includes(h)), `admin: dead letters, sync jobs, cron runs (${headings})`);
  if (shots) await owner.screenshot({ path: join(shots, 'admin.png'), fullPage: true });

  // The API reference: Swagger UI on the generated document, with no request off this host.
  const docs = await owner.context().newPage();
  const offsite = [];
  docs.on('request', (r) => { if (!r.url().startsWith(BASE)) offsite.push(r.url()); });
  await docs.goto(`${BASE}/docs`);
  await docs.waitForSelector('.opblock-summary-path', { timeout: 20000 });
  const operations = await docs.$$eval('.opblock-summary-path', (p) => p.map((x) => x.textContent));
  check(operations.some((p) => p.includes('/api/v1/overview')), `docs: Swagger UI lists the operations (${operations.length})`);
  check(offsite.length === 0, `docs: nothing fetched from elsewhere ${offsite.join(' ')}`);

  // A developer: their own page, and not another developer's.
  const dev = await signedIn(env('DEV_EMAIL'), env('DEV_PASSWORD'));
  const navLinks = await dev.$$eval('#nav a', (a) => a.map((x) => x.textContent));
  check(!navLinks.includes('Admin'), 'developer: no admin page in the menu');
  await open(dev, '#/me');
  await expectChartsDrawn(dev, 'my page (developer)', { min: 3 });
  await open(dev, `#/developers/${env('OTHER_DEV_ID')}`);
  const refused = await dev.$('#app .error[data-code=forbidden]');
  check(refused !== null, 'developer: another developer\'s page is refused');
  const leaked = await dev.$$('#app canvas');
  check(leaked.length === 0, 'developer: nothing of the other developer is drawn');
  if (shots) await dev.screenshot({ path: join(shots, 'developer-refused.png') });
  await open(dev, '#/admin');
  check((await dev.$('#app .error[data-code=forbidden]')) !== null, 'developer: the admin page is refused');
} catch (e) {
  failures.push(`stopped: ${e.message}`);
} finally {
  await browser.close();
}

console.log(`\n${checks} checks, ${failures.length} failed`);
if (failures.length) {
  for (const f of failures) console.error(`FAILED: ${f}`);
  process.exit(1);
}
