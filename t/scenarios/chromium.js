// chromium.js — what the headless-Chromium scenario drivers share (browser.js,
// mailweb-browser.js, stat-browser.js): Debian's chromium through playwright-core (installed
// into build/node by the .t files), one persistent profile, a watchdog that prints what was
// seen so far and exits 2, and the step/text helpers.
'use strict';
const path = require('path');
const { chromium } = require(path.join(process.env.CROW_ROOT || '.', 'build/node/node_modules/playwright-core'));

// Launches Chromium on PROFILE.  After LIMIT_MS the process prints SEEN (with timeout: true)
// as JSON and exits 2.  Returns { ctx, page, timer }; clearTimeout(timer) when done.
async function launch(profile, seen, limitMs) {
  const timer = setTimeout(() => {
    console.log(JSON.stringify(Object.assign(seen, { timeout: true })));
    process.exit(2);
  }, limitMs);
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1024, height: 768 },
    timeout: 60000,
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.setDefaultTimeout(20000);
  return { ctx, page, timer };
}

// The text of the first element matching SEL, or null.
async function text(page, sel) {
  const el = await page.$(sel);
  return el ? (await el.textContent()) : null;
}

// Runs FN; an error is recorded in SEEN.errors under NAME instead of ending the run.
function stepper(seen) {
  return async (name, fn) => {
    try { await fn(); } catch (e) { seen.errors.push(name + ': ' + String(e).split('\n')[0]); }
  };
}

module.exports = { launch, text, stepper };
