// The Drift screen end to end: SDK instances as their reports describe them
// (posted here as an SDK client in HTTP mode posts them), against a real ECS
// server, in headless Chromium.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { api, axeViolations, newPage, start, ADMIN_TOKEN } from './harness.mjs';

let env;
let admin;

before(async () => {
  env = await start();
  admin = api(env.url);
});

after(async () => {
  await env?.stop();
});

/** A drift report of one instance that applied `position` of checkout. */
function report(instance, service, position) {
  return {
    v: 1,
    service,
    env: 'prod',
    instance,
    sdk_version: '0.1.0',
    interval_secs: 60,
    subscribers: 1,
    followed: [{ namespace: 'checkout', applied_position: position }],
  };
}

describe('Drift', () => {
  test('lists an instance behind a later change first, a current one after it; a diff names the services that read its keys', async () => {
    assert.ok((await admin.put('/v1/namespaces/checkout', { description: 'Checkout' })).status < 300);
    const first = await admin.put('/v1/namespaces/checkout/layer', { values: { limit: 1 }, message: 'first' });
    assert.ok(first.status < 300, JSON.stringify(first.body));
    const old = await admin.post('/v1/drift/reports', report('worker-1', 'worker', first.body.position));
    assert.equal(old.status, 204, JSON.stringify(old.body));
    const second = await admin.put('/v1/namespaces/checkout/layer', { values: { limit: 2 }, message: 'second' });
    assert.ok(second.status < 300, JSON.stringify(second.body));
    const fresh = await admin.post('/v1/drift/reports', report('web-1', 'web', second.body.position));
    assert.equal(fresh.status, 204, JSON.stringify(fresh.body));

    const page = await newPage(env.context);
    await page.goto(`${env.url}/studio/`);
    await page.getByLabel('Token').fill(ADMIN_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Namespaces', level: 1 }).waitFor();
    await page.getByRole('link', { name: 'Drift', exact: true }).click();
    await page.getByRole('heading', { name: 'Drift', level: 1 }).waitFor();
    await page.locator('tr[data-instance="web-1"]').waitFor();

    const rows = page.locator('tr[data-instance]');
    assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => [tr.dataset.instance, tr.dataset.status])), [
      ['worker-1', 'behind'],
      ['web-1', 'current'],
    ]);
    const behind = await page.locator('tr[data-instance="worker-1"]').textContent();
    assert.match(behind, new RegExp(`at ${first.body.position} of ${second.body.position}`));
    assert.match(await page.getByRole('table').locator('caption').textContent(), /1 behind, 1 current, 0 stale/);
    assert.deepEqual(await axeViolations(page), [], 'axe on the Drift screen');

    // The impact of a change: the compare view names the services that read the keys that differ.
    const reads = { ...report('web-1', 'web', second.body.position), reads: [{ namespace: 'checkout', key: 'limit', reads: 3 }] };
    assert.equal((await admin.post('/v1/drift/reports', reads)).status, 204);
    assert.ok((await admin.put('/v1/namespaces/checkout/layer?env=prod', { values: { limit: 3 }, message: 'prod' })).status < 300);
    const sides = new URLSearchParams({ left: 'env=dev', right: 'env=prod' });
    await page.goto(`${env.url}/studio/namespaces/checkout/compare?${sides}`);
    await page.getByTestId('read-by').waitFor();
    assert.equal(await page.getByTestId('read-by').textContent(), 'Read by: web (last 7 days)');
    assert.deepEqual(await axeViolations(page), [], 'axe on the compare view with its readers');
    assert.deepEqual(page.problems, [], 'no CSP violation or page error');
    assert.deepEqual(env.foreign, [], 'no request to another host');
  });
});
