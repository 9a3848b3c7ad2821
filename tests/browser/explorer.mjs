// Drives Debian's chromium (headless, through playwright-core) against the explorer of a running `dragon
// serve`, for tests/it/explorer.rs. Protocol: one JSON line on stdout per step; commands on stdin, one a line:
//   watch <orderHash>          the page must show this order (the test publishes it right after "watching")
//   deal <dealid>              the market page must list this deal among recent deals
//   status <taskid> <STATUS>   the market page must show this task with this status
//   pages <JSON>               visit the deal, order, task, pool and address pages, and search
//   track <pool> <completed>   open the pool's page until its track record shows <completed> tasks completed,
//                              then report every figure shown (raw value and text), per window
//   goto <route> <view>        open a hash route (#/deal/0x…) and wait for its view to be ready
//   wait <selector>            wait (up to 60 s) for an element, then report its text
//   copy <selector>            click a copy button, report what the clipboard holds
//   shot <name>                save a screenshot (with DRAGON_SCREENSHOTS)
//   quit                       report the errors seen and stop
// Usage: node explorer.mjs <base URL> '{"category": N}'; `pages` brings {dealid, taskid, pool, request, requester,
// blocked} (blocked: an open request whose "why not matched" is checked).
// With DRAGON_SCREENSHOTS=<dir>, the main views are saved there as PNG files.
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { join } from 'node:path';

const [base, configText] = process.argv.slice(2);
const cfg = JSON.parse(configText);
const shots = process.env.DRAGON_SCREENSHOTS || null;
const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const errors = [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, deviceScaleFactor: 1 });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()} (${m.location().url || ''})`); });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));

  const ready = (name) => page.waitForSelector(`#view[data-ready="${name}"]`, { timeout: 15000 });
  const shot = async (name) => {
    if (!shots) return;
    await page.evaluate(() => document.getElementById('toast').classList.remove('show'));
    await page.waitForTimeout(400); // let the flash of fresh rows and the toast fade
    await page.screenshot({ path: join(shots, `explorer-${name}.png`), fullPage: true });
  };
  const count = (sel) => page.locator(sel).count();
  const stillLoaded = () => page.evaluate(() => window.__sameLoad === true);

  await page.goto(`${base}/#/market/${cfg.category}`);
  await ready('market');
  await page.waitForSelector('#live[data-live="on"]', { timeout: 10000 });
  // The load this test follows: a reload would lose the mark.
  await page.evaluate(() => { window.__sameLoad = true; });
  say({
    step: 'ready',
    depthPaths: await count('#m-depth svg path'),
    priceDots: await count('#m-prices svg circle'),
    asks: await count('#m-asks tbody tr'),
    bids: await count('#m-bids tbody tr'),
    deals: await count('#m-deals tr[data-deal]'),
    copy: await count('#m-deals button.copy'),
    rlc: (await count('#m-asks .amt')) ? await page.locator('#m-asks .amt').first().textContent() : null,
    nrlcTitle: (await count('#m-asks .amt')) ? await page.locator('#m-asks .amt').first().getAttribute('title') : null,
  });

  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    const [cmd, a, b] = line.trim().split(/\s+/);
    const rest = line.trim().slice(cmd.length).trim();
    if (cmd === 'quit') break;
    if (cmd === 'goto') {
      await page.evaluate((r) => { location.hash = r; }, a);
      await ready(b);
      say({ step: 'at', statuses: await page.locator('tr[data-task]').evaluateAll((rows) => rows.map((r) => r.dataset.status)) });
    } else if (cmd === 'wait') {
      const el = await page.waitForSelector(rest, { timeout: 60000 });
      say({ step: 'found', text: (await el.textContent()).trim(), sameLoad: await stillLoaded() });
    } else if (cmd === 'copy') {
      await page.click(rest);
      say({ step: 'copied', text: await page.evaluate(() => navigator.clipboard.readText()), toast: await page.locator('#toast').textContent() });
    } else if (cmd === 'shot') {
      await shot(a);
      say({ step: 'shot' });
    } else if (cmd === 'watch') {
      // Observe before the order exists, so the time it appears is taken by the page itself.
      await page.evaluate((h) => {
        const sel = `tr[data-order="${h}"]`;
        window.__seen = new Promise((resolve) => {
          if (document.querySelector(sel)) resolve(Date.now());
          const mo = new MutationObserver(() => { if (document.querySelector(sel)) { mo.disconnect(); resolve(Date.now()); } });
          mo.observe(document.body, { subtree: true, childList: true });
        });
      }, a);
      say({ step: 'watching' });
      const at = await Promise.race([page.evaluate(() => window.__seen), page.waitForTimeout(10000).then(() => null)]);
      say({ step: 'seen', at, sameLoad: await stillLoaded(), depthPaths: await count('#m-depth svg path'), offered: await page.locator('#m-offered').textContent() });
    } else if (cmd === 'deal') {
      await page.waitForSelector(`#m-deals tr[data-deal="${a}"]`, { timeout: 15000 });
      say({ step: 'deal', sameLoad: await stillLoaded(), priceDots: await count('#m-prices svg circle') });
    } else if (cmd === 'status') {
      await page.waitForSelector(`#m-tasks tr[data-task="${a}"][data-status="${b}"]`, { timeout: 15000 });
      say({ step: 'status', sameLoad: await stillLoaded() });
      await shot('market');
    } else if (cmd === 'track') {
      const [, pool, completed] = line.trim().split(/\s+/);
      await page.evaluate((a) => { location.hash = `#/pool/${a}`; }, pool);
      await ready('pool');
      // The page reloads itself when a task of the pool completes: wait for the figure, then read the panel.
      await page.waitForFunction(
        (n) => document.querySelector('#track-record tr[data-window="allTime"] td[data-k="completed"]')?.dataset.v === n,
        completed, { timeout: 30000 });
      const out = { step: 'track' };
      for (const w of ['allTime', 'last30Days']) {
        out[w] = await page.$$eval(`#track-record tr[data-window="${w}"] td[data-k]`,
          (tds) => Object.fromEntries(tds.map((td) => [td.dataset.k, { v: td.dataset.v, text: td.textContent }])));
      }
      out.hint = await page.locator('#track-record').locator('xpath=ancestor::section').locator('.hint').textContent();
      out.sameLoad = await stillLoaded();
      await shot('pool');
      say(out);
    } else if (cmd === 'pages') {
      Object.assign(cfg, JSON.parse(line.trim().slice('pages'.length)));
      const out = { step: 'pages' };
      // The deal with its tasks.
      await page.evaluate((id) => { location.hash = `#/deal/${id}`; }, cfg.dealid);
      await ready('deal');
      out.dealTasks = await count('table.tasks tr[data-task]');
      out.dealActive = await count(`table.tasks tr[data-task="${cfg.taskid}"][data-status="ACTIVE"]`);
      out.dealRequestLink = await count(`a[href="#/order/${cfg.request}"]`);
      // The request: its settled proposal and its deal.
      await page.click(`a[href="#/order/${cfg.request}"]`);
      await ready('order');
      out.orderStatus = await page.locator('#o-status').textContent();
      out.orderDealLink = await count(`#o-deals tr[data-deal="${cfg.dealid}"]`);
      out.orderSettled = await count('.badge.settled');
      await shot('order');
      // Why not matched: the open request at 0.03 RLC is blocked by the price of every offer.
      await page.evaluate((h) => { location.hash = `#/order/${h}`; }, cfg.blocked);
      await ready('order');
      out.whyCodes = await page.locator('#o-why tr[data-combination="0"] li[data-code]').evaluateAll((xs) => xs.map((x) => x.dataset.code));
      out.whyText = await page.locator('#o-why tr[data-combination="0"]').textContent();
      out.whyRows = await count('#o-why tr[data-combination]');
      await shot('order-why');
      // The task and its history.
      await page.evaluate((id) => { location.hash = `#/task/${id}`; }, cfg.taskid);
      await ready('task');
      out.taskEvents = await page.locator('table tbody tr').allTextContents();
      // Search: a deal id, a pool address, a requester address, an unknown hash, malformed text.
      const search = async (q) => {
        await page.fill('#search-input', q);
        await page.press('#search-input', 'Enter');
      };
      await search(cfg.dealid);
      await ready('deal');
      out.searchDeal = await page.evaluate(() => location.hash);
      await search(cfg.pool);
      await ready('pool');
      out.searchPool = await page.evaluate(() => location.hash);
      out.poolRate = await page.locator('#p-rate').textContent();
      out.poolDeals = await count('table.deals tr[data-deal]');
      out.poolOrders = await count('tr[data-order]');
      await search(cfg.requester);
      await ready('address');
      out.searchRequester = await page.evaluate(() => location.hash);
      out.requesterDeals = await count('#a-req tr[data-deal]');
      await search(`0x${'ab'.repeat(32)}`);
      await ready('nothing');
      out.searchUnknown = await page.evaluate(() => location.hash);
      await search('not a hash');
      out.malformedToast = await page.locator('#toast').textContent();
      await page.fill('#search-input', '');
      // The deal list and the tasks list.
      await page.click('a[data-nav="deals"]');
      await ready('deals');
      out.dealsListed = await count('table.deals tr[data-deal]');
      await shot('deals');
      await page.click('a[data-nav="tasks"]');
      await ready('tasks');
      out.tasksListed = await count('table.tasks tr[data-task]');
      out.sameLoad = await stillLoaded();
      say(out);
    }
  }
  say({ step: 'done', errors });
} catch (e) {
  say({ step: 'error', message: String(e && e.stack ? e.stack : e), errors });
  process.exitCode = 1;
} finally {
  await browser.close();
}
