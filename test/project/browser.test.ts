import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from '../helpers/browser.js';

test('the browser the dashboard tests use starts and renders a page', async () => {
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    await page.setContent('<p id="x">rendered</p><script>document.getElementById("x").textContent += " and scripted"</script>');
    assert.equal(await page.textContent('#x'), 'rendered and scripted');
  } finally {
    await browser.close();
  }
});
