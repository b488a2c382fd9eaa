import { start, newPage } from '/work/wt-studio/studio/e2e/harness.mjs';
const env = await start();
try {
  const page = await newPage(env.context);
  page.on('console', (m) => console.log('console', m.type(), m.text()));
  page.on('requestfailed', (r) => console.log('failed', r.url(), r.failure()?.errorText));
  page.on('response', (r) => console.log('resp', r.status(), r.url()));
  await page.goto(`${env.url}/studio/`);
  await page.waitForTimeout(3000);
  console.log((await page.content()).slice(0, 1500));
  console.log(page.problems, env.foreign);
} finally { await env.stop(); }
