// mailweb-browser.js — headless Chromium (Debian's, through playwright-core) on the mail web
// interface for t/scenarios/mailweb-browser.t: logs in as demo, submits a bad filter form
// (reads the errors shown beside the fields), adds a filter, and logs in as admin to add a
// header filter.  Prints one JSON object of what it saw; the .t judges it.
//   node mailweb-browser.js BASE_URL PROFILE_DIR SCREENSHOT.png
'use strict';
const path = require('path');
const { launch, text, stepper } = require(path.join(__dirname, 'chromium.js'));

const [base, profile, shot] = process.argv.slice(2);
const seen = { errors: [] };

const step = stepper(seen);

async function submit(page, sel) {
  await Promise.all([page.waitForNavigation(), page.click(sel)]);
}

(async () => {
  const { ctx, page, timer } = await launch(profile, seen, 150000);

  await step('login-wrong', async () => {
    const r = await page.goto(base + '/mail/');
    seen.start = { url: page.url(), status: r.status(), title: await page.title() };
    await page.fill('#f-login', 'demo');
    await page.fill('#f-password', 'not-the-password');
    await submit(page, '#login-submit');
    seen.wrong = { url: page.url(), error: await text(page, '#err-password'),
                   login: await page.inputValue('#f-login') };
  });

  await step('login', async () => {
    await page.fill('#f-password', 'demo');
    await submit(page, '#login-submit');
    seen.login = { url: page.url(), who: await text(page, '#who'),
                   mailboxes: await page.$$eval('#mailboxes td.name', els => els.map(e => e.textContent)) };
  });

  await step('bad-filter', async () => {
    await page.fill('#f-sender', 'not a pattern');
    await page.fill('#f-priority', 'first');
    await submit(page, '#filter-submit');
    seen.bad = { sender: await text(page, '#err-sender'), priority: await text(page, '#err-priority'),
                 kept: await page.inputValue('#f-sender'), summary: await text(page, '#errors') };
  });

  await step('filter', async () => {
    await page.fill('#f-sender', '*@spam.example');
    await page.fill('#f-recipient', '');
    await page.selectOption('#f-action', 'reject');
    await page.fill('#f-priority', '10');
    await submit(page, '#filter-submit');
    seen.filter = { url: page.url(), notice: await text(page, '#notice'),
                    rows: await page.$$eval('#filters tr.filter', trs => trs.map(tr =>
                      [tr.querySelector('.sender').textContent, tr.querySelector('.recipient').textContent,
                       tr.querySelector('.action').textContent])) };
    await page.screenshot({ path: shot, fullPage: false });
  });

  await step('logout', async () => {
    await submit(page, '#logout');
    seen.logout = { url: page.url() };
  });

  await step('admin', async () => {
    await page.goto(base + '/mail/login');
    await page.fill('#f-login', 'admin@crow.test');
    await page.fill('#f-password', 'admin');
    await submit(page, '#login-submit');
    seen.admin = { url: page.url(), menu: await page.$$eval('#admin-menu a', as => as.map(a => a.textContent)) };
    await page.goto(base + '/mail/admin/header-filters');
    await page.fill('#f-header', 'Subject');
    await page.fill('#f-regex', '[unclosed');
    await page.selectOption('#f-action', 'reject');
    await submit(page, '#add-submit');
    seen.admin.regexError = await text(page, '#err-regex');
    await page.fill('#f-regex', 'buy (cheap|now)');
    await submit(page, '#add-submit');
    seen.admin.notice = await text(page, '#notice');
  });

  await ctx.close();
  clearTimeout(timer);
  console.log(JSON.stringify(seen));
})().catch(e => {
  seen.errors.push('fatal: ' + String(e).split('\n')[0]);
  console.log(JSON.stringify(seen));
  process.exit(1);
});
