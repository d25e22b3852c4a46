// stat-browser.js — drives headless Chromium (Debian's, through playwright-core) on crow's
// /stats page for t/scenarios/stat-browser.t: reads the counter shown, asks the test (a line
// on stdout, then waits for "go" on stdin) to run `mmstat update`, and waits for the page to
// show the new value without a reload; ticks the counter and checks its SVG chart appears.
// Prints one JSON object of what it saw.   node stat-browser.js BASE_URL PROFILE_DIR KEY
'use strict';
const path = require('path');
const readline = require('readline');
const { launch } = require(path.join(__dirname, 'chromium.js'));

const [base, profile, key] = process.argv.slice(2);
const seen = { errors: [] };
const rl = readline.createInterface({ input: process.stdin });
const lines = [];
let waiter = null;
rl.on('line', (l) => { if (waiter) { const w = waiter; waiter = null; w(l); } else lines.push(l); });
function nextLine() { return lines.length ? Promise.resolve(lines.shift()) : new Promise((r) => { waiter = r; }); }

(async () => {
  const { ctx, page, timer } = await launch(profile, seen, 120000);
  try {
    const r = await page.goto(base + '/stats?pattern=' + encodeURIComponent('demo|*'));
    seen.status = r.status();
    seen.title = await page.title();
    const cell = `tr[data-key="${key}"] td.value`;
    await page.waitForSelector(cell);
    seen.before = await page.textContent(cell);
    await page.click(`tr[data-key="${key}"] input.chart-toggle`);
    console.log('update');           // the test runs mmstat update now
    await nextLine();
    await page.waitForFunction(([sel, old]) => {
      const el = document.querySelector(sel); return el && el.textContent !== old;
    }, [cell, seen.before], { timeout: 15000 });
    seen.after = await page.textContent(cell);
    seen.navigations = await page.evaluate(() => performance.getEntriesByType('navigation').length);
    await page.waitForSelector('#charts img', { timeout: 10000 });
    const src = await page.getAttribute('#charts img', 'src');
    const svg = await page.evaluate(async (u) => { const r = await fetch(u); return { type: r.headers.get('content-type'), body: await r.text() }; }, src);
    seen.chartType = svg.type;
    seen.chartHasLine = svg.body.includes('<polyline');
    seen.chartNamesKey = svg.body.includes(key);
  } catch (e) {
    seen.errors.push(String(e).split('\n')[0]);
  }
  clearTimeout(timer);
  console.log(JSON.stringify(seen));
  await ctx.close();
  process.exit(0);
})();
