// The playground end to end in headless Chromium (Debian's /usr/bin/chromium, or
// $CHROMIUM): type a policy and see its diagnostic inline, format it, explain a flow, look
// at a node's filter, and write a screenshot (playground/screenshot.png, or $SCREENSHOT).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

import { serve } from '../serve.js';

const screenshot = process.env.SCREENSHOT ?? fileURLToPath(new URL('../screenshot.png', import.meta.url));
let server;
let browser;

before(async () => {
  server = await serve(0);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
});

after(async () => {
  await browser?.close();
  server?.close();
});

test('edit, see diagnostics, format, explain, view a filter', async () => {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`http://127.0.0.1:${server.address().port}/playground/`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 30000 });
  assert.match(await page.textContent('#status'), /^valid/);

  // Type a policy with an undefined group: a diagnostic appears, underlined in the editor.
  await page.fill('#policy', '');
  await page.type('#policy', '{"acls":[{"action":"accept","src":["group:nobody"],"dst":["tag:web:443"]}]}', { delay: 2 });
  // The emptied editor is invalid too (no value at all): wait for the typed policy's own
  // diagnostic, not just any invalid state (a loaded machine types slowly).
  await page.waitForFunction(
    () => /group:nobody/.test(document.querySelector('#diagnostics li.error')?.textContent ?? ''),
  );
  assert.equal(await page.getAttribute('#status', 'data-state'), 'invalid');
  const first = await page.textContent('#diagnostics li.error');
  assert.match(first, /group:nobody/);
  assert.ok(await page.$('#backdrop mark.error'), 'the span is marked in the editor');

  // Fix it, then format: the one-line policy is laid out.
  await page.fill('#policy', '{"tagOwners":{"tag:web":["group:eng"],"tag:db":["group:eng"],"tag:router":["group:eng"],"tag:exit":["group:eng"]},'
    + '"groups":{"group:eng":["alice@example.com","bob@example.com"]},'
    + '"acls":[{"action":"accept","src":["group:eng"],"dst":["tag:web:443"]}]}');
  await page.waitForSelector('#status[data-state="valid"]');
  await page.click('#format');
  const formatted = await page.inputValue('#policy');
  assert.ok(formatted.split('\n').length > 5, formatted);

  // Explain: bob reaches web-1:443, not db-1:5432.
  await page.waitForSelector('#explain:not([disabled])');
  await page.fill('#src', 'bob@example.com');
  await page.fill('#dst', 'web-1:443');
  await page.click('#explain');
  assert.match(await page.textContent('#explanation'), /^allowed/);
  await page.fill('#dst', 'db-1:5432');
  await page.click('#explain');
  assert.match(await page.textContent('#explanation'), /^denied/);

  // A node's filter: web-1 accepts port 443.
  await page.selectOption('#node', 'web-1');
  assert.match(await page.textContent('#filter'), /"First": 443/);

  // A typo (an undefined group): underlined in the editor and listed, explain disabled.
  await page.fill('#policy', formatted.replace('"src": ["group:eng"]', '"src": ["group:engg"]'));
  await page.waitForSelector('#status[data-state="invalid"]');
  await page.waitForSelector('#backdrop mark.error');
  assert.match(await page.textContent('#explanation'), /fix the policy/);

  // For the picture: the fixed policy with its warnings marked, a flow explained, a filter.
  await page.fill('#policy', formatted);
  await page.waitForSelector('#status[data-state="valid"]');
  await page.waitForSelector('#explain:not([disabled])');
  await page.click('#explain');
  await page.selectOption('#node', 'web-1');
  await page.waitForSelector('#backdrop mark.warning');
  await page.screenshot({ path: screenshot, fullPage: true });
  assert.deepEqual(errors, []);
});
