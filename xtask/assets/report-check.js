// Opens the analyst's HTML report in headless Chromium (Playwright driving Debian's
// /usr/bin/chromium), takes a full-page screenshot, and reports what would make the
// page wrong for a reader: console errors, uncaught exceptions, failed loads, and any
// request that leaves the file (the page must be self-contained).
// Usage: node report-check.js <report.html> <screenshot.png> <chromium>
const { chromium } = require('playwright-core');
const path = require('path');

(async () => {
  const [report, screenshot, executable] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: executable,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems = [];
  const url = 'file://' + path.resolve(report);
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`failed load: ${r.url()}`));
  page.on('request', (r) => {
    if (r.url() !== url) problems.push(`request beyond the file: ${r.url()}`);
  });
  await page.goto(url, { waitUntil: 'load' });
  const seen = await page.evaluate(() => ({
    title: document.title,
    sections: [...document.querySelectorAll('section h2')].map((h) => h.textContent),
    charts: document.querySelectorAll('svg').length,
    figures: document.querySelectorAll('[data-figure]').length,
    height: document.documentElement.scrollHeight,
  }));
  await page.screenshot({ path: screenshot, fullPage: true });
  await browser.close();
  console.log(JSON.stringify({ ...seen, problems }));
  process.exit(problems.length === 0 && seen.figures > 0 ? 0 : 1);
})().catch((e) => { console.error(e); process.exit(2); });
