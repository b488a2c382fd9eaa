// Screenshots of Config Studio's main screens (docs/studio/*.png) and its
// first-screen figures (gzipped JavaScript, time to interactive on loopback),
// taken against a real server with demo data. Run: npm run screenshots
// (with ECS_TEST_PG_URL and ECS_NATS_SERVER set, after a build).

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ADMIN_TOKEN, STUDIO_DIR, api, firstScreenJs, newPage, start } from './harness.mjs';

const OUT = resolve(STUDIO_DIR, '../docs/studio');
mkdirSync(OUT, { recursive: true });

const SCHEMA = {
  type: 'object',
  required: ['currency'],
  properties: {
    currency: { type: 'string', title: 'Currency', enum: ['EUR', 'USD', 'CHF'], default: 'EUR', description: 'The currency carts are billed in' },
    max_items: { type: 'integer', title: 'Most items in a cart', minimum: 1, maximum: 500, default: 50 },
    express_checkout: { type: 'boolean', title: 'Express checkout', default: false },
    banner: { type: 'string', title: 'Banner text', description: 'Shown above the cart' },
  },
};

const env = await start();
try {
  const base = api(env.url);
  // Demo data that the server refuses would make every picture wrong: stop instead.
  const admin = {
    put: async (path, body) => {
      const r = await base.put(path, body);
      if (r.status >= 300) throw new Error(`PUT ${path}: ${r.status} ${JSON.stringify(r.body)}`);
      return r;
    },
  };
  await admin.put('/v1/tenants/acme', { edition: 'enterprise', name: 'Acme Corp' });
  await admin.put('/v1/tenants/globex', { edition: 'standard' });
  await admin.put('/v1/namespaces/checkout', { description: 'Cart and payment settings of the checkout service', schema: SCHEMA });
  await admin.put('/v1/namespaces/logging', { description: 'Log levels and sampling per service', schema: { type: 'object', properties: { level: { enum: ['debug', 'info', 'warn', 'error'], default: 'info' } } } });
  // Under an approval policy every write in the pictures would wait for a second person:
  // the policy is on a namespace the pictures do not edit.
  await admin.put('/v1/namespaces/billing-limits', { description: 'Invoice and usage limits per edition', approval: { scopes: [{ env: 'prod' }] } });
  await admin.put('/v1/namespaces/checkout/layer', { values: { currency: 'EUR', max_items: 50, banner: 'Welcome' }, lock: ['/banner'], message: 'initial defaults' });
  await admin.put('/v1/namespaces/checkout/layer?tenant=acme', { values: { currency: 'EUR', max_items: 100 }, message: 'acme buys in bulk' });
  await admin.put('/v1/namespaces/checkout/layer?tenant=acme', { values: { max_items: 200, currency: 'CHF', express_checkout: true }, message: 'acme bills in Swiss francs' });

  const page = await newPage(env.context);
  await page.setViewportSize({ width: 1280, height: 860 });
  const shot = async (name) => {
    await page.waitForTimeout(300);
    await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: false });
    console.log(`docs/studio/${name}.png`);
  };

  // Time to interactive: navigation start until the sign-in field takes input.
  const samples = [];
  for (let i = 0; i < 11; i++) {
    const p = await newPage(env.context);
    await p.goto(`${env.url}/studio/`);
    await p.getByLabel('Token').fill('x');
    samples.push(await p.evaluate(() => performance.now()));
    await p.close();
  }
  // The first load fetches every asset; later loads find them cached.
  const cold = samples[0];
  samples.sort((a, b) => a - b);

  await page.goto(`${env.url}/studio/`);
  await page.getByLabel('Token').waitFor();
  await shot('signin');
  await page.getByLabel('Token').fill(ADMIN_TOKEN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('link', { name: 'checkout' }).waitFor();
  await shot('namespaces');
  await page.getByLabel('Search namespaces, keys and values').fill('max_items');
  await page.getByText('values match').waitFor();
  await shot('search');
  await page.goto(`${env.url}/studio/namespaces/checkout`);
  await page.getByRole('heading', { name: 'Namespace checkout' }).waitFor();
  await shot('namespace');
  await page.goto(`${env.url}/studio/namespaces/checkout/layer?tenant=acme`);
  await page.getByLabel('Most items in a cart').fill('900');
  await page.getByLabel('Change message').fill('acme wants more');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('alert').waitFor();
  await shot('layer-editor');
  await page.goto(`${env.url}/studio/namespaces/checkout/resolved?env=prod&tenant=acme`);
  await page.locator('tr[data-pointer="/max_items"]').waitFor();
  await shot('resolved');
  await page.goto(`${env.url}/studio/namespaces/checkout/history?tenant=acme`);
  await page.getByRole('heading', { name: 'Revision 1 → revision 2' }).waitFor();
  await shot('history');
  await page.getByRole('button', { name: 'Roll back to revision 1' }).click();
  await page.getByRole('dialog').waitFor();
  await shot('rollback');
  await page.keyboard.press('Escape');
  await page.goto(`${env.url}/studio/tenants`);
  await page.getByRole('button', { name: 'Edit tenant acme' }).click();
  await page.getByRole('heading', { name: 'Change tenant acme' }).waitFor();
  await shot('tenants');
  await page.goto(`${env.url}/studio/tenants/acme/history`);
  await page.locator('table.timeline tbody tr').first().waitFor();
  await shot('tenant-history');
  await page.goto(`${env.url}/studio/audit?namespace=checkout`);
  await page.locator('table.audit').waitFor();
  await shot('audit');
  // Drift: instances as their SDK clients report them, one behind the latest change.
  const report = (instance, service, position, extra = {}) => ({
    v: 1,
    service,
    env: 'prod',
    instance,
    sdk_version: '0.1.0',
    interval_secs: 15,
    subscribers: 2,
    followed: [{ namespace: 'checkout', applied_position: position }],
    ...extra,
  });
  await base.post('/v1/drift/reports', report('worker-7f9c-1', 'billing-worker', 2));
  const latest = (await base.get('/v1/drift')).body.instances[0].followed[0].latest_position;
  await base.post('/v1/drift/reports', report('web-5d2a-1', 'checkout-web', latest));
  await base.post('/v1/drift/reports', report('web-5d2a-2', 'checkout-web', latest));
  await base.post('/v1/drift/reports', report('cron-3', 'reports-cron', latest, { stopping: true, subscribers: 0 }));
  await page.goto(`${env.url}/studio/drift`);
  await page.locator('tr[data-instance="web-5d2a-2"]').waitFor();
  await shot('drift');

  const js = firstScreenJs();
  const median = samples[Math.floor(samples.length / 2)];
  console.log(
    JSON.stringify(
      {
        first_screen_js: js,
        time_to_interactive_ms: { cold: Math.round(cold), median: Math.round(median), max: Math.round(samples.at(-1)), runs: samples.length },
      },
      null,
      2,
    ),
  );
} finally {
  await env.stop();
}
