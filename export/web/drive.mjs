// Drive the page in a real headless Chromium (playwright-core, no bundled browser) and print what it showed as JSON.
//
//   node drive.mjs '{"url": "http://127.0.0.1:8000/web/index.html", "selftest": 100, "file": "shirt.png",
//                    "screenshot": "/tmp/web-shot.png", "chromium": "/usr/bin/chromium"}'
//
// Opens url?selftest=N and waits for #selftest; clicks the first bundled test image and takes the screenshot;
// picks `file` with the file input and reads the visible result. Every request that does not go to the page's
// own host is aborted and listed in "offsite", so a run shows that the page needs nothing from the network.
// Used by tests/export/test_web.py.

import {chromium} from 'playwright-core';
import {mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
               '--disable-component-update', '--disable-sync', '--no-first-run'];

const options = JSON.parse(process.argv[2]);
const url = new URL(options.url);
const profile = mkdtempSync(join(tmpdir(), 'kerascnn-chromium-'));
const report = {offsite: [], console: []};
const context = await chromium.launchPersistentContext(profile, {
  executablePath: options.chromium || '/usr/bin/chromium', args: FLAGS, headless: true,
  viewport: {width: 800, height: 720}});
try {
  await context.route('**/*', (route) => {
    if (new URL(route.request().url()).host === url.host) return route.continue();
    report.offsite.push(route.request().url());
    return route.abort();
  });
  const page = context.pages()[0] || await context.newPage();
  page.on('console', (message) => report.console.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => report.console.push(`pageerror: ${error.message}`));

  if (options.selftest) url.searchParams.set('selftest', String(options.selftest));
  const start = Date.now();
  await page.goto(url.href);
  const selftest = page.locator('#selftest');
  await selftest.filter({hasText: /selftest:|error:/}).waitFor({timeout: options.timeout_ms || 120000});
  report.selftest = await selftest.textContent();
  report.results = await page.evaluate(() => window.selftestResults || null);
  report.seconds = (Date.now() - start) / 1000;
  report.model = await page.locator('#model').textContent();

  if (report.results) {
    await page.locator('#samples button').first().click();
    await page.locator('#truth').filter({hasText: 'true class'}).waitFor();
    if (options.screenshot) await page.screenshot({path: options.screenshot, fullPage: true});
  }
  if (options.file && report.results) {
    await page.locator('#file').setInputFiles(options.file);
    await page.locator('#truth').filter({hasText: 'file:'}).waitFor();
    report.picked = {
      labels: await page.locator('#result .label').allTextContents(),
      scores: await page.locator('#result .score').allTextContents(),
      latency: await page.locator('#latency').textContent(),
      model: await page.locator('#model').textContent(),
    };
  }
} catch (error) {
  report.error = error.message;
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, {recursive: true, force: true});
}
console.log(JSON.stringify(report));
