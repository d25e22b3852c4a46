// browser.js — drives headless Chromium (Debian's, through playwright-core) over crow's demo
// site for t/scenarios/browser.t: submits its forms, uploads files, does the cookie round
// trip, and takes a screenshot.  Prints one JSON object of what it saw; browser.t judges it.
//   node browser.js BASE_URL PROFILE_DIR SCREENSHOT.png FILE...
'use strict';
const path = require('path');
const { launch, text, stepper } = require(path.join(__dirname, 'chromium.js'));

const [base, profile, shot, ...files] = process.argv.slice(2);
const seen = { errors: [] };

const step = stepper(seen);

(async () => {
  const { ctx, page, timer } = await launch(profile, seen, 150000);

  await step('pages', async () => {
    seen.pages = {};
    for (const p of ['/', '/news', '/software', '/docs', '/gallery', '/contact', '/test', '/hello']) {
      const r = await page.goto(base + p);
      seen.pages[p] = { status: r.status(), title: await page.title(), h1: await text(page, 'h1'),
                        type: r.headers()['content-type'] };
    }
    seen.hello = await page.textContent('body');
  });

  await step('urlencoded', async () => {
    await page.goto(base + '/test');
    seen.cookieBefore = await text(page, '#cookie-value');
    await page.fill('#text', 'héllo <b>&amp; "q"');
    await page.fill('#number', '1234');
    await Promise.all([page.waitForNavigation(), page.click('#submit-form')]);
    seen.form = { text: await text(page, '#r-text'), number: await text(page, '#r-number'),
                  method: await text(page, '#method'), path: await text(page, '#path') };
  });

  await step('checkbox', async () => {
    await page.goto(base + '/test');
    await page.check('#color-red');
    await page.check('#color-blue');
    await Promise.all([page.waitForNavigation(), page.click('#submit-checkbox')]);
    seen.checkbox = { color: await text(page, '#r-color'), method: await text(page, '#method'),
                      query: await text(page, '#query') };
  });

  await step('upload', async () => {
    await page.goto(base + '/test');
    await page.fill('#comment', 'two files');
    await page.setInputFiles('#file', files);
    await Promise.all([page.waitForNavigation(), page.click('#submit-upload')]);
    seen.upload = { comment: await text(page, '#r-comment'), count: await text(page, '#file-count'),
                    names: await page.$$eval('td.name', els => els.map(e => e.textContent)),
                    sizes: await page.$$eval('td.size', els => els.map(e => e.textContent)),
                    sha256: await page.$$eval('td.sha256', els => els.map(e => e.textContent)) };
  });

  await step('cookie', async () => {
    await page.goto(base + '/test');
    await page.fill('#cookie-input', 'crow ✓ 42; "x"');
    await Promise.all([page.waitForNavigation(), page.click('#submit-cookie')]);
    seen.cookie = { url: page.url(), shown: await text(page, '#cookie-value'),
                    jar: (await ctx.cookies()).map(c => ({ name: c.name, value: c.value, path: c.path,
                                                           httpOnly: c.httpOnly, sameSite: c.sameSite })) };
    await page.goto(base + '/test');
    seen.cookie.again = await text(page, '#cookie-value');
  });

  await step('contact', async () => {
    await page.goto(base + '/contact');
    await page.fill('input[name=name]', 'Ann <admin>');
    await page.fill('textarea[name=message]', 'Hello crow');
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    seen.contact = await text(page, '#thanks');
  });

  await step('screenshot', async () => {
    await page.goto(base + '/gallery');
    await page.waitForLoadState('load');
    seen.images = await page.$$eval('.gallery img', els => els.map(e => e.naturalWidth));
    await page.screenshot({ path: shot, fullPage: false });
    seen.screenshot = shot;
  });

  await ctx.close();
  clearTimeout(timer);
  console.log(JSON.stringify(seen));
})().catch(e => {
  seen.errors.push('fatal: ' + String(e).split('\n')[0]);
  console.log(JSON.stringify(seen));
  process.exit(1);
});
