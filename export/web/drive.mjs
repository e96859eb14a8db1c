// Edge side of the export (export/): TensorFlow-free; the TensorFlow side that writes the files is kerascnn/export/.
// Drive the page in a real headless Chromium (playwright-core, no bundled browser) and print what it showed as JSON.
//
//   node drive.mjs '{"url": "http://127.0.0.1:8000/web/index.html", "selftest": 100, "files": ["shirt.png"],
//                    "drop": "boot.png", "camera": "/tmp/frame.png", "screenshot": "/tmp/web-shot.png",
//                    "chromium": "/usr/bin/chromium"}'
//
// Opens url?selftest=N and waits for #selftest; clicks the first bundled test image and takes the screenshot;
// picks each of `files` with the file input (and `bad`, a file that is not an image), drops `drop` onto the drop zone, and with "camera": PATH classifies
// a frame of Chromium's fake camera and saves the model's input (the frame at the model's size) as PNG at PATH;
// reads what the page shows for each (top 3, latency, model, the model-input canvas's [height, width]). Every
// request that does not go to the page's own host is aborted and listed in "offsite", so a run shows that the
// page needs nothing from the network.
// Used by tests/export/test_web.py.

import {chromium} from 'playwright-core';
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {basename, join} from 'node:path';

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
               '--disable-component-update', '--disable-sync', '--no-first-run',
               // Chromium's built-in test camera (a moving pattern), allowed without a prompt
               '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'];

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
  // What the page shows for an image file, picked with the file input or dropped onto the drop zone.
  const shown = async (truth) => {
    await page.locator('#truth').filter({hasText: truth}).waitFor();
    return {
      labels: await page.locator('#result .label').allTextContents(),
      scores: await page.locator('#result .score').allTextContents(),
      latency: await page.locator('#latency').textContent(),
      model: await page.locator('#model').textContent(),
      input: await page.locator('#input').evaluate((canvas) => [canvas.height, canvas.width]),
      // the pixels the page handed to MediaPipe (the model's input), as a PNG data URL
      inputPng: await page.locator('#input').evaluate((canvas) => canvas.toDataURL('image/png')),
    };
  };
  report.picked = [];
  for (const file of report.results ? options.files || [] : []) {
    await page.locator('#file').setInputFiles(file);
    report.picked.push(await shown(`file: ${basename(file)}`));
  }
  if (options.bad && report.results) {
    await page.locator('#file').setInputFiles(options.bad);
    await page.locator('#status').filter({hasText: 'error:'}).waitFor();
    report.bad = await page.locator('#status').textContent();
  }
  if (options.drop && report.results) {
    const data = await page.evaluateHandle(([name, base64]) => {
      const transfer = new DataTransfer();
      const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      transfer.items.add(new File([bytes], name, {type: 'image/png'}));
      return transfer;
    }, [basename(options.drop), readFileSync(options.drop).toString('base64')]);
    await page.dispatchEvent('#drop', 'drop', {dataTransfer: data});
    report.dropped = await shown(`file: ${basename(options.drop)}`);
  }
  if (options.camera && report.results) {
    await page.locator('#camera').click();
    await page.locator('#video').evaluate((video) => new Promise((resolve) => {
      if (video.readyState >= 2) resolve(); else video.onloadeddata = resolve;
    }));
    await page.locator('#snap').click();
    report.camera = await shown('camera frame');
    const png = await page.locator('#input').evaluate((canvas) => canvas.toDataURL('image/png'));
    writeFileSync(options.camera, Buffer.from(png.split(',')[1], 'base64'));
  }
} catch (error) {
  report.error = error.message;
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, {recursive: true, force: true});
}
console.log(JSON.stringify(report));
