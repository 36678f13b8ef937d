// Drives Debian's Chromium through open131's pages, as a customer would, and
// reports what it saw; the Rust test that runs it (crates/open131-server/
// tests/browser.rs) makes the assertions. The plan comes as JSON on stdin:
//   {"executable": "/usr/bin/chromium", "screenshots": "<dir>",
//    "visits": [{"name": "...", "url": "...", "javascript": false, "viewport": {"width": 1280, "height": 800},
//                "steps": [{"fill": "#code", "text": "131131"}, {"click": "button[value=confirm]"}]}]}
// A step with "frame" acts inside that iframe of the page (a widget on a
// partner's page): {"frame": "iframe", "fill"|"type": "#number", "text": "..."}
// ("type" presses the keys one by one, as a person types) or {"frame":
// "iframe", "click": "button"} or {"frame": "iframe", "visible": "#x"} (the run
// fails unless it shows); {"wait": "#result.done"} waits for a selector;
// {"press": "#connect"} clicks a button that acts in the page (no navigation).
// After loading and after every step it saves <screenshots>/<name>-<n>.png.
// It prints one JSON line: [{"name", "url", "title", "text", "screenshots": [...]}].
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const plan = JSON.parse(await new Promise((resolve) => {
  let input = '';
  process.stdin.on('data', (chunk) => { input += chunk; });
  process.stdin.on('end', () => resolve(input));
}));
mkdirSync(plan.screenshots, { recursive: true });

// The machine's network is closed: no background traffic, no updates.
const browser = await chromium.launch({
  executablePath: plan.executable,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const results = [];
try {
  for (const visit of plan.visits) {
    // A phone-sized screen unless the visit names another (a desktop's, say).
    const viewport = visit.viewport || { width: 480, height: 720 };
    const context = await browser.newContext({ javaScriptEnabled: visit.javascript, viewport });
    const page = await context.newPage();
    const shots = [];
    const shoot = async () => {
      const path = join(plan.screenshots, `${visit.name}-${shots.length}.png`);
      await page.screenshot({ path, fullPage: true });
      shots.push(path);
    };
    await page.goto(visit.url);
    await shoot();
    for (const step of visit.steps) {
      if (step.frame !== undefined) {
        const frame = page.frameLocator(step.frame);
        if (step.fill !== undefined) {
          await frame.locator(step.fill).fill(step.text);
        } else if (step.type !== undefined) {
          await frame.locator(step.type).pressSequentially(step.text);
        } else if (step.click !== undefined) {
          await frame.locator(step.click).click();
        } else if (step.visible !== undefined) {
          // Fails the run unless it shows.
          await frame.locator(step.visible).waitFor({ state: 'visible', timeout: 5000 });
        }
      } else if (step.wait !== undefined) {
        await page.waitForSelector(step.wait, { timeout: 10000 });
      } else if (step.fill !== undefined) {
        await page.fill(step.fill, step.text);
      } else if (step.click !== undefined) {
        await Promise.all([page.waitForNavigation(), page.click(step.click)]);
      } else if (step.press !== undefined) {
        // A button that acts in the page (a script's), with no navigation.
        await page.click(step.press);
      }
      await shoot();
    }
    results.push({
      name: visit.name,
      url: page.url(),
      title: await page.title(),
      text: await page.locator('body').innerText(),
      screenshots: shots,
    });
    await context.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(results));
