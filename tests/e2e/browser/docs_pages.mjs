// Screenshot pages of the built docs and measure whether their tables and code fit.
//
// Run by tests/e2e/test_e2e_browser.py with node; drives Debian's /usr/bin/chromium through
// playwright-core. Input (environment):
//   DOCS_URL      the root of the served docs/_build/html
//   PAGES         comma-separated page paths, e.g. "connections/azure_storage_queue.html,howto/sensor.html"
//   SHOT_DIR      where to save <page path with / as ->.png
//   WIDTH         the viewport width (default 1400)
// Output: one JSON line on stdout: per page, the content column's width and every table or code
// block wider than the box that shows it (scrollWidth > clientWidth), with the page's own
// horizontal overflow; exit code 1 with a message on stderr when a page cannot be loaded.

import { chromium } from 'playwright-core';

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env('DOCS_URL').replace(/\/$/, '');
const pages = env('PAGES').split(',').filter(Boolean);
const shotDir = env('SHOT_DIR');
const width = Number(env('WIDTH', '1400'));

const result = { width, pages: {} };
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
});
try {
  const page = await browser.newPage({ viewport: { width, height: 1000 } });
  page.setDefaultTimeout(120_000); // a hang guard: slow on a busy machine
  for (const path of pages) {
    const response = await page.goto(`${base}/${path}`);
    if (!response || !response.ok()) throw new Error(`${path}: HTTP ${response && response.status()}`);
    await page.waitForLoadState('load');
    const seen = await page.evaluate(() => {
      const article = document.querySelector('article.bd-article') || document.querySelector('main');
      const box = (el) => {
        // The element that scrolls: a table's wrapper, a code block's <pre>.
        const r = el.getBoundingClientRect();
        return { scrollWidth: el.scrollWidth, clientWidth: el.clientWidth, left: Math.round(r.left), right: Math.round(r.right) };
      };
      const overflowing = [];
      const tables = [...article.querySelectorAll('table')];
      const pres = [...article.querySelectorAll('div.highlight pre')];
      for (const el of [...tables.map((t) => t.parentElement), ...tables, ...pres]) {
        const b = box(el);
        if (b.scrollWidth > b.clientWidth) {
          overflowing.push({ tag: el.tagName.toLowerCase(), cls: el.className, text: el.innerText.slice(0, 80), ...b });
        }
      }
      const longest = Math.max(0, ...pres.map((p) => Math.max(...p.innerText.split('\n').map((l) => l.length))));
      return {
        title: document.title,
        article: box(article),
        tables: tables.length,
        code_blocks: pres.length,
        longest_code_line: longest,
        overflowing,
        page_scroll_width: document.documentElement.scrollWidth,
        page_client_width: document.documentElement.clientWidth,
        has_search: !!document.querySelector('.search-button, form.bd-search, [aria-label="Search"]'),
        has_page_toc: !!document.querySelector('.bd-sidebar-secondary nav, #pst-page-toc-nav, .page-toc'),
        version_shown: (document.querySelector('.fluke-version') || {}).innerText || null,
      };
    });
    const shot = `${shotDir}/${path.replace(/\.html$/, '').replace(/\//g, '-')}.png`;
    await page.screenshot({ path: shot, fullPage: false });
    result.pages[path] = { ...seen, screenshot: shot };
  }
} catch (error) {
  result.error = String(error && error.stack ? error.stack : error);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(result.error ? 1 : 0);
