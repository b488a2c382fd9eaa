// Config Studio end to end: a real ECS server (real NATS, real PostgreSQL)
// and headless Chromium driving the built app as a person would.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { ADMIN_TOKEN, api, axeViolations, eventually, firstScreenJs, newPage, start } from './harness.mjs';

const SCHEMA = {
  type: 'object',
  properties: {
    limit: { type: 'integer', title: 'Cart limit', description: 'Most items in one cart', maximum: 100, default: 10 },
    mode: { type: 'string', title: 'Mode', enum: ['fast', 'safe'], default: 'safe' },
    banner: { type: 'string', title: 'Banner' },
  },
};

let env;
let admin;

before(async () => {
  env = await start();
  admin = api(env.url);
  for (const [tenant, edition] of [
    ['acme', 'pro'],
    ['globex', 'standard'],
  ]) {
    assert.equal((await admin.put(`/v1/tenants/${tenant}`, { edition })).status < 300, true);
  }
});

after(async () => {
  await env?.stop();
});

/** Creates a namespace and a global layer; returns the write's position. */
async function namespaceWithLayer(name, values, description = 'Checkout limits') {
  const ns = await admin.put(`/v1/namespaces/${name}`, { description, schema: SCHEMA });
  assert.ok(ns.status < 300, JSON.stringify(ns.body));
  const layer = await admin.put(`/v1/namespaces/${name}/layer`, { values, message: 'first' });
  assert.ok(layer.status < 300, JSON.stringify(layer.body));
  return layer.body.position;
}

async function signIn(page, token = ADMIN_TOKEN) {
  await page.goto(`${env.url}/studio/`);
  await page.getByLabel('Token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Namespaces', level: 1 }).waitFor();
}

async function assertAccessible(page, screen) {
  const violations = await axeViolations(page);
  assert.deepEqual(violations, [], `axe on ${screen}`);
}

function assertClean(page) {
  assert.deepEqual(page.problems, [], 'no CSP violation or page error');
  assert.deepEqual(env.foreign, [], 'no request to another host');
}

async function issueToken(body) {
  const r = await admin.post('/v1/tokens', body);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.token;
}

describe('Config Studio', () => {
  test('the first screen loads at most 400 KB of JavaScript gzipped', () => {
    const js = firstScreenJs();
    assert.ok(js.files.length > 0, 'index.html names its entry script');
    assert.ok(js.gzipped <= 400 * 1024, `first screen: ${js.gzipped} bytes gzipped`);
  });

  test('signs in with a token and shows the role and its scope', async () => {
    await namespaceWithLayer('signin', { limit: 5 });
    const page = await newPage(env.context);
    await page.goto(`${env.url}/studio/`);
    await page.getByLabel('Token').waitFor();
    await assertAccessible(page, 'sign-in');

    await page.getByLabel('Token').fill('not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').getByText('Your token was not accepted').waitFor();

    await signIn(page);
    assert.equal(await page.getByTestId('role').textContent(), 'admin');
    assert.match(await page.getByTestId('role-scope').textContent(), /every tenant/);
    await page.getByRole('link', { name: 'signin' }).waitFor();
    await assertAccessible(page, 'namespaces');

    await page.getByLabel('Search namespaces, keys and values').fill('no such thing');
    await page.getByText('0 of').waitFor();
    await page.getByLabel('Search namespaces, keys and values').fill('cart limit');
    await page.getByRole('link', { name: 'signin' }).waitFor();

    await page.getByRole('link', { name: 'signin' }).click();
    await page.getByRole('heading', { name: 'Namespace signin' }).waitFor();
    assert.match(await page.getByTestId('approval').textContent(), /no approval needed/);
    await page.getByRole('cell', { name: 'Most items in one cart' }).waitFor();
    await assertAccessible(page, 'namespace page');
    assertClean(page);
    await page.close();
  });

  test('an edit through the schema form changes the resolved view, explained', async () => {
    await namespaceWithLayer('edit', { limit: 5 });
    const page = await newPage(env.context);
    await signIn(page);
    await page.goto(`${env.url}/studio/namespaces/edit/layer`);
    await page.getByLabel('Cart limit').waitFor();
    await page.getByLabel('Layer values as JSON').waitFor();
    await assertAccessible(page, 'layer editor');
    await page.getByLabel('Cart limit').fill('42');
    await page.getByLabel('Change message').fill('raise the limit');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved as revision 2').waitFor();

    await page.getByRole('link', { name: 'Resolved for this scope' }).click();
    const row = page.locator('tr[data-pointer="/limit"]');
    await row.waitFor();
    assert.match(await row.textContent(), /42.*global.*2/);
    await assertAccessible(page, 'resolved view');
    const layer = await admin.get('/v1/namespaces/edit/layer');
    assert.equal(layer.body.values.limit, 42);
    assert.equal(layer.body.message, 'raise the limit');
    assertClean(page);
    await page.close();
  });

  test('a schema violation shows on its field and writes nothing', async () => {
    await namespaceWithLayer('invalid', { limit: 5 });
    const page = await newPage(env.context);
    await signIn(page);
    await page.goto(`${env.url}/studio/namespaces/invalid/layer`);
    await page.getByLabel('Cart limit').fill('500');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('alert').getByText("The values do not satisfy the namespace's schema").waitFor();
    // The message sits on the limit field itself.
    const field = page.locator('.form-group', { has: page.getByLabel('Cart limit') }).first();
    await field.locator('.error-detail, .text-danger').first().waitFor();
    assert.match(await field.textContent(), /100/);
    await assertAccessible(page, 'layer editor with errors');
    const layer = await admin.get('/v1/namespaces/invalid/layer');
    assert.equal(layer.body.revision, 1);
    assert.equal(layer.body.values.limit, 5);
    assertClean(page);
    await page.close();
  });

  test('a value locked by a weaker layer shows locked in the editor', async () => {
    await admin.put('/v1/namespaces/locked', { description: 'Locks', schema: SCHEMA });
    const global = await admin.put('/v1/namespaces/locked/layer', { values: { limit: 5 }, lock: ['/limit'], message: 'guardrail' });
    assert.ok(global.status < 300, JSON.stringify(global.body));
    const page = await newPage(env.context);
    await signIn(page);
    await page.goto(`${env.url}/studio/namespaces/locked/layer?tenant=acme`);
    await page.getByTestId('binding-locks').getByText('/limit (by the global layer)').waitFor();
    const limit = page.getByLabel('Cart limit');
    assert.equal(await limit.getAttribute('readonly'), '', 'the locked field is read-only');
    await page.getByText('Locked: by the global layer').waitFor();
    assert.equal(await page.getByLabel('Mode').isEditable(), true, 'other fields stay editable');
    await assertAccessible(page, 'layer editor with a locked value');
    // The global layer holds the lock itself: there the value stays editable.
    await page.goto(`${env.url}/studio/namespaces/locked/layer`);
    await page.getByTestId('own-locks').waitFor();
    assert.equal(await page.getByLabel('Cart limit').isEditable(), true);
    assertClean(page);
    await page.close();
  });

  test('a stale edit is reported as a conflict, not written over', async () => {
    await namespaceWithLayer('stale', { limit: 5 });
    const page = await newPage(env.context);
    await signIn(page);
    await page.goto(`${env.url}/studio/namespaces/stale/layer`);
    await page.getByLabel('Cart limit').waitFor();
    // Someone else writes while the page is open.
    const other = await admin.put('/v1/namespaces/stale/layer', { values: { limit: 7 }, message: 'meanwhile' });
    assert.equal(other.status, 200);
    await page.getByLabel('Cart limit').fill('9');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('alert').getByText('Someone changed this since you opened it').waitFor();
    await page.getByRole('button', { name: /Reload the current version/ }).waitFor();
    const layer = await admin.get('/v1/namespaces/stale/layer');
    assert.equal(layer.body.values.limit, 7);
    await page.getByRole('button', { name: /Reload the current version/ }).click();
    await eventually(async () => (await page.getByLabel('Cart limit').inputValue()) === '7', { what: 'the current value' });
    assertClean(page);
    await page.close();
  });

  test('an open editor shows that the base moved, keeping the edit in progress', async () => {
    await namespaceWithLayer('moved', { limit: 5 });
    const page = await newPage(env.context);
    await signIn(page);
    await page.goto(`${env.url}/studio/namespaces/moved/layer`);
    await page.getByLabel('Cart limit').fill('9');
    await new Promise((r) => setTimeout(r, 500));
    const other = await admin.put('/v1/namespaces/moved/layer', { values: { limit: 8 }, message: 'from elsewhere' });
    assert.equal(other.status, 200, JSON.stringify(other.body));
    await page.getByTestId('base-moved').getByText('Revision 2 was saved by admin while you were editing').waitFor();
    assert.equal(await page.getByLabel('Cart limit').inputValue(), '9', 'the edit in progress is kept');
    await page.getByRole('button', { name: 'Reload revision 2 (discards your edit)' }).click();
    await eventually(async () => (await page.getByLabel('Cart limit').inputValue()) === '8', { what: 'revision 2 loaded' });
    await page.getByTestId('base-moved').waitFor({ state: 'detached' });
    assertClean(page);
    await page.close();
  });

  test('an edit merges onto a moved base, both changes kept and a value changed on both sides listed', async () => {
    await namespaceWithLayer('merge', { limit: 5, mode: 'fast' });
    const page = await newPage(env.context);
    await signIn(page);
    await page.goto(`${env.url}/studio/namespaces/merge/layer`);
    await page.getByLabel('Cart limit').fill('9');
    await new Promise((r) => setTimeout(r, 500));
    const other = await admin.put('/v1/namespaces/merge/layer', { values: { limit: 5, mode: 'safe' }, message: 'safer' });
    assert.equal(other.status, 200, JSON.stringify(other.body));
    await page.getByTestId('base-moved').getByText('Revision 2 was saved by admin while you were editing').waitFor();
    await page.getByRole('button', { name: 'Merge my edit onto revision 2' }).click();
    await page.getByTestId('merged').getByText('Nothing you changed was changed there too').waitFor();
    assert.equal(await page.getByLabel('Cart limit').inputValue(), '9', 'the edit is kept');
    assert.equal(await page.getByLabel('Mode').locator('option:checked').textContent(), 'safe', 'the other change is taken in');
    await page.getByLabel('Change message').fill('raise the limit');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved as revision 3').waitFor();
    assert.deepEqual((await admin.get('/v1/namespaces/merge/layer')).body.values, { limit: 9, mode: 'safe' });

    // Both change the limit: the save is refused as a conflict, the merge lists the value.
    await page.getByLabel('Cart limit').fill('11');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await admin.put('/v1/namespaces/merge/layer', { values: { limit: 12, mode: 'safe', banner: 'sale' }, message: 'sale' })).status, 200);
    await page.getByTestId('base-moved').waitFor();
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('button', { name: 'Merge my edit onto the current version' }).click();
    const merged = page.getByTestId('merged');
    await merged.getByText('One value was changed both by you and in revision 4').waitFor();
    assert.match(await merged.locator('li').textContent(), /\/limit: yours 11, revision 4's 12/);
    assert.equal(await page.getByLabel('Banner').inputValue(), 'sale');
    await assertAccessible(page, 'layer editor after a merge');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved as revision 5').waitFor();
    assert.deepEqual((await admin.get('/v1/namespaces/merge/layer')).body.values, { limit: 11, mode: 'safe', banner: 'sale' });
    assertClean(page);
    await page.close();
  });

  test("a layer's own locks are added and removed in the editor, and bind narrower layers", async () => {
    await namespaceWithLayer('own-locks', { limit: 5 });
    const page = await newPage(env.context);
    await signIn(page);
    await page.goto(`${env.url}/studio/namespaces/own-locks/layer`);
    const locks = page.getByTestId('own-locks');
    await locks.getByText('This layer locks nothing.').waitFor();
    await page.getByLabel('Lock a value (JSON pointer)').fill('limit');
    await page.getByRole('button', { name: 'Add the lock' }).click();
    await locks.getByText('The pointer is not valid: a JSON pointer starts with "/"').waitFor();
    await assertAccessible(page, 'own locks with a refused pointer');
    await page.getByLabel('Lock a value (JSON pointer)').fill('/limit');
    await page.getByLabel('Lock a value (JSON pointer)').press('Enter');
    await page.getByTestId('locks-unsaved').waitFor();
    assert.match(await page.getByTestId('pending-changes').textContent(), /locks: \/limit/);
    await page.getByLabel('Change message').fill('lock the limit');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved as revision 2').waitFor();
    const saved = await admin.get('/v1/namespaces/own-locks/layer');
    assert.deepEqual(saved.body.locked, ['/limit']);
    assert.equal(saved.body.values.limit, 5, 'the limit is unchanged');
    const refused = await admin.put('/v1/namespaces/own-locks/layer?env=prod', { values: { limit: 70 }, message: 'override' });
    assert.equal(refused.status, 422, JSON.stringify(refused.body));

    await page.getByRole('button', { name: 'Unlock /limit' }).click();
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved as revision 3').waitFor();
    assert.deepEqual((await admin.get('/v1/namespaces/own-locks/layer')).body.locked, []);
    assert.equal((await admin.put('/v1/namespaces/own-locks/layer?env=prod', { values: { limit: 70 }, message: 'override' })).status, 201, 'the narrower layer is written once unlocked');
    assertClean(page);
    await page.close();
  });

  test('history shows the diff, and a rollback confirms the diff it applies', async () => {
    await namespaceWithLayer('rollback', { limit: 5, mode: 'fast' });
    await admin.put('/v1/namespaces/rollback/layer', { values: { limit: 50, mode: 'safe' }, message: 'second' });
    const page = await newPage(env.context);
    await signIn(page);
    await page.goto(`${env.url}/studio/namespaces/rollback/history`);
    await page.getByRole('heading', { name: 'Revision 1 → revision 2' }).waitFor();
    assert.match(await page.locator('.diff-summary').first().textContent(), /\/limit changed.*\/mode changed/);
    await page.locator('td.line.removed', { hasText: '"limit": 5' }).waitFor();
    await page.locator('td.line.added', { hasText: '"limit": 50' }).waitFor();
    await assertAccessible(page, 'history');

    await page.getByRole('button', { name: 'Roll back to revision 1' }).click();
    const dialog = page.getByRole('dialog', { name: 'Roll back to revision 1?' });
    await dialog.waitFor();
    await dialog.locator('td.line.removed', { hasText: '"limit": 50' }).waitFor();
    await dialog.locator('td.line.added', { hasText: '"limit": 5' }).waitFor();
    await assertAccessible(page, 'rollback confirmation');
    await dialog.getByRole('button', { name: 'Confirm the rollback' }).click();
    await page.getByText('Rolled back to the values of revision 1: now revision 3').waitFor();
    const layer = await admin.get('/v1/namespaces/rollback/layer');
    assert.equal(layer.body.revision, 3);
    assert.deepEqual(layer.body.values, { limit: 5, mode: 'fast' });
    assertClean(page);
    await page.close();
  });

  test('two contexts compare side by side', async () => {
    await namespaceWithLayer('compare', { limit: 5, mode: 'fast' });
    await admin.put('/v1/namespaces/compare/layer?env=prod', { values: { limit: 70 }, message: 'prod' });
    const page = await newPage(env.context);
    await signIn(page);
    await page.goto(`${env.url}/studio/namespaces/compare`);
    await page.getByRole('link', { name: 'Compare with another context' }).click();
    await page.locator('#left-env').fill('dev');
    await page.locator('#right-env').fill('prod');
    await page.getByRole('button', { name: 'Compare' }).click();
    await page.getByRole('heading', { name: /env=dev \(position \d+\) compared with env=prod/ }).waitFor();
    await page.locator('td.line.removed', { hasText: '"limit": 5' }).waitFor();
    await page.locator('td.line.added', { hasText: '"limit": 70' }).waitFor();
    assert.match(await page.locator('.diff-summary').textContent(), /1 value differs: \/limit changed/);
    await assertAccessible(page, 'compare');
    assertClean(page);
    await page.close();
  });

  test("two scopes' own layers compare side by side, a scope without a layer as empty", async () => {
    await namespaceWithLayer('compare-layers', { limit: 5, mode: 'fast' });
    await admin.put('/v1/namespaces/compare-layers/layer?env=prod', { values: { limit: 70 }, message: 'prod' });
    const page = await newPage(env.context);
    await signIn(page);
    await page.goto(`${env.url}/studio/namespaces/compare-layers/compare?left=&right=`);
    await page.getByLabel(/the layers themselves/).check();
    await page.locator('#right-env').fill('prod');
    await page.getByRole('button', { name: 'Compare' }).click();
    await page.getByRole('heading', { name: /Layer global \(revision 1\) compared with layer env=prod \(revision 1\)/ }).waitFor();
    assert.match(page.url(), /what=layers/);
    // The prod layer sets only the limit: the mode is not in it (resolution would inherit it).
    await page.locator('td.line.removed', { hasText: '"mode": "fast"' }).waitFor();
    await page.locator('td.line.added', { hasText: '"limit": 70' }).waitFor();
    await assertAccessible(page, 'compare layers');

    await page.locator('#left-env').fill('dev');
    await page.getByRole('button', { name: 'Compare' }).click();
    await page.getByRole('heading', { name: /Layer env=dev \(no layer\) compared with layer env=prod/ }).waitFor();
    assertClean(page);
    await page.close();
  });

  test('one context compares with itself at an earlier point in time, resolved and as a layer', async () => {
    const first = await namespaceWithLayer('compare-past', { limit: 5, mode: 'fast' });
    const later = await admin.put('/v1/namespaces/compare-past/layer', { values: { limit: 60, mode: 'fast' }, message: 'later' });
    assert.ok(later.status < 300, JSON.stringify(later.body));
    const page = await newPage(env.context);
    await signIn(page);
    await page.goto(`${env.url}/studio/namespaces/compare-past/compare?left=&right=`);
    await page.locator('#left-pit-position').fill(String(first));
    await page.getByRole('button', { name: 'Compare' }).click();
    await page.getByRole('heading', { name: new RegExp(`global as of position ${first} \\(position ${first}\\) compared with global \\(position \\d+\\)`) }).waitFor();
    await page.locator('td.line.removed', { hasText: '"limit": 5' }).waitFor();
    await page.locator('td.line.added', { hasText: '"limit": 60' }).waitFor();
    assert.match(await page.locator('.diff-summary').textContent(), /1 value differs: \/limit changed/);
    await assertAccessible(page, 'compare two points in time');

    // The same two moments of the layer itself: revision 1 against revision 2.
    await page.getByLabel(/the layers themselves/).check();
    await page.getByRole('button', { name: 'Compare' }).click();
    await page.getByRole('heading', { name: new RegExp(`Layer global as of position ${first} \\(revision 1\\) compared with layer global \\(revision 2\\)`) }).waitFor();
    await page.locator('td.line.added', { hasText: '"limit": 60' }).waitFor();

    // A malformed point in time in the address is said in words, and nothing is read.
    await page.goto(`${env.url}/studio/namespaces/compare-past/compare?left=position%3Dsoon&right=`);
    await page.getByRole('alert').getByText('The point in time is not valid (left: a position is a whole number).').waitFor();
    assertClean(page);
    await page.close();
  });

  test('the flags screen toggles a flag, sets a percentage rollout, shows a refused default variant on its field', async () => {
    assert.ok((await admin.put('/v1/namespaces/flags', { kind: 'flags', description: 'Feature flags' })).status < 300);
    const first = await admin.put('/v1/namespaces/flags/layer', {
      values: { flags: { checkout: { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'off' } } },
      message: 'first',
    });
    assert.ok(first.status < 300, JSON.stringify(first.body));
    const page = await newPage(env.context);
    await signIn(page);
    await page.goto(`${env.url}/studio/namespaces/flags`);
    await page.getByRole('link', { name: 'Flags of layer global' }).click();
    await page.getByRole('heading', { name: 'Flags of flags, layer global' }).waitFor();
    assert.equal(await page.getByLabel('State of checkout').inputValue(), 'ENABLED');
    await assertAccessible(page, 'flags');

    await page.getByLabel('State of checkout').selectOption('DISABLED');
    await page.getByLabel(/Rollout of checkout: % of users getting “on”/).fill('25');
    assert.match(await page.getByLabel('Targeting (JsonLogic) of checkout').inputValue(), /"fractional"/);
    await page.getByLabel('Change message').fill('pause, then a quarter');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved as revision 2').waitFor();
    const saved = (await admin.get('/v1/namespaces/flags/layer')).body;
    assert.equal(saved.values.flags.checkout.state, 'DISABLED');
    assert.deepEqual(saved.values.flags.checkout.targeting, { fractional: [['on', 25], ['off', 75]] });
    // The server evaluates what was saved: the flag is off for everyone.
    const evaluated = await admin.post('/ofrep/v1/evaluate/flags/checkout', { context: { targetingKey: 'user-1', namespace: 'flags' } });
    assert.equal(evaluated.body.reason, 'DISABLED', JSON.stringify(evaluated.body));

    // A default variant the flag lacks: 422 shown on that field, nothing written.
    await page.getByLabel('Default variant of checkout').fill('maybe');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('#flag-checkout-default-problem').waitFor();
    assert.match(await page.locator('#flag-checkout-default-problem').textContent(), /\/flags\/checkout\/defaultVariant/);
    await assertAccessible(page, 'flags with a refused default variant');
    assert.equal((await admin.get('/v1/namespaces/flags/layer')).body.revision, 2, 'nothing written');

    // A new flag needs a valid key; it starts off.
    await page.getByLabel('Default variant of checkout').fill('off');
    await page.getByLabel('New flag key').fill('dark mode');
    await page.getByRole('button', { name: 'Add the flag (off until turned on)' }).click();
    await page.locator('#new-flag-key-problem').waitFor();
    await page.getByLabel('New flag key').fill('dark-mode');
    await page.getByRole('button', { name: 'Add the flag (off until turned on)' }).click();
    assert.equal(await page.getByLabel('State of dark-mode').inputValue(), 'DISABLED');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved as revision 3').waitFor();
    assert.deepEqual(Object.keys((await admin.get('/v1/namespaces/flags/layer')).body.values.flags).sort(), ['checkout', 'dark-mode']);

    // History and diff are the layer's.
    await page.getByRole('link', { name: 'History of this layer (diff, rollback)' }).click();
    await page.getByRole('heading', { name: 'Revision 2 → revision 3' }).waitFor();
    await page.locator('td.line.added', { hasText: '"dark-mode"' }).first().waitFor();
    assertClean(page);
    await page.close();
  });

  test('the flags screen creates a rollout plan, lists it, pauses and cancels it, a refused step shown on its field', async () => {
    assert.ok((await admin.put('/v1/namespaces/flags-plans', { kind: 'flags', description: 'Planned rollouts' })).status < 300);
    const layer = await admin.put('/v1/namespaces/flags-plans/layer', {
      values: {
        flags: {
          checkout: { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'off' },
          theme: { state: 'ENABLED', variants: { a: 'a', b: 'b', c: 'c' }, defaultVariant: 'a' },
        },
      },
      message: 'first',
    });
    assert.ok(layer.status < 300, JSON.stringify(layer.body));
    const page = await newPage(env.context);
    await signIn(page);
    await page.goto(`${env.url}/studio/namespaces/flags-plans/flags`);
    await page.getByRole('heading', { name: 'Rollout plans of this layer' }).waitFor();
    await page.getByText('No rollout plan for this layer.').waitFor();
    // Only a flag with two variants can be rolled out.
    const options = await page.getByLabel('Flag to roll out').locator('option').allTextContents();
    assert.deepEqual(options, ['checkout: “on” to a share, the rest “off”']);
    await assertAccessible(page, 'flags with the rollout plan form');

    // Times in the browser's own time zone, as a person types them.
    const local = (hours) =>
      page.evaluate((h) => {
        const d = new Date(Date.now() + h * 3600 * 1000);
        const pad = (n) => String(n).padStart(2, '0');
        return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
      }, hours);
    await page.getByRole('button', { name: 'Remove step 3' }).click();
    await page.getByLabel('Time of step 1').fill(await local(24));
    await page.getByLabel('Percentage of step 1').fill('10');
    await page.getByLabel('Time of step 2').fill(await local(12));
    await page.getByLabel('Percentage of step 2').fill('100');
    await page.getByRole('button', { name: 'Create the plan' }).click();
    // The server refuses a step before the one it follows: shown on that step's time.
    await page.locator('#plan-step-1-at-problem').waitFor();
    assert.match(await page.locator('#plan-step-1-at-problem').textContent(), /increase/);
    assert.equal(await page.getByLabel('Time of step 2').getAttribute('aria-invalid'), 'true');
    await assertAccessible(page, 'a refused rollout plan');
    assert.deepEqual((await admin.get('/v1/namespaces/flags-plans/rollouts')).body.rollouts, [], 'nothing stored');

    await page.getByLabel('Time of step 2').fill(await local(48));
    await page.getByRole('button', { name: 'Create the plan' }).click();
    await page.getByText('Created a plan rolling out “on” of checkout in 2 steps.').waitFor();
    const row = page.locator('[data-testid="rollout-plans"] tbody tr');
    await eventually(async () => (await row.count()) === 1, { what: 'the plan listed' });
    assert.equal(await row.getByTestId('plan-status').textContent(), 'active');
    assert.match(await row.textContent(), /0 of 2 steps applied; next: 10 % at /);
    const [plan] = (await admin.get('/v1/namespaces/flags-plans/rollouts')).body.rollouts;
    assert.equal(plan.flag, 'checkout');
    assert.deepEqual(
      plan.steps.map((s) => s.percent),
      [10, 100],
    );
    await assertAccessible(page, 'flags with a rollout plan');

    // Pause from the keyboard, then cancel.
    await row.getByRole('button', { name: /^Pause the plan of checkout/ }).focus();
    await page.keyboard.press('Enter');
    await eventually(async () => (await row.getByTestId('plan-status').textContent()) === 'paused', { what: 'the paused plan' });
    assert.match(await row.textContent(), /\(paused\)/);
    await row.getByRole('button', { name: /^Cancel the plan of checkout/ }).click();
    await eventually(async () => (await row.getByTestId('plan-status').textContent()) === 'cancelled', { what: 'the cancelled plan' });
    assert.equal(await row.getByRole('button').count(), 0, 'an ended plan has no controls');
    assert.equal((await admin.get(`/v1/namespaces/flags-plans/rollouts/${plan.id}`)).body.status, 'cancelled');

    // Each change is in the audit log, by the signed-in principal.
    await eventually(
      async () => {
        const entries = (await admin.get('/v1/audit?namespace=flags-plans')).body.entries.map((e) => `${e.action} ${e.actor}`);
        return ['rollout.created admin', 'rollout.paused admin', 'rollout.cancelled admin'].every((x) => entries.includes(x));
      },
      { what: 'the plan changes in the audit log' },
    );
    assertClean(page);
    await page.close();
  });

  test('the resolved view shows the past at a position or a time', async () => {
    const first = await namespaceWithLayer('past', { limit: 5 });
    await new Promise((r) => setTimeout(r, 1100));
    const between = new Date();
    await new Promise((r) => setTimeout(r, 1100));
    await admin.put('/v1/namespaces/past/layer', { values: { limit: 60 }, message: 'later' });
    const page = await newPage(env.context);
    await signIn(page);
    await page.goto(`${env.url}/studio/namespaces/past/resolved`);
    const row = page.locator('tr[data-pointer="/limit"]');
    await eventually(async () => /60/.test(await row.textContent()), { what: 'the current value' });

    await page.getByLabel('As of position').fill(String(first));
    await page.getByRole('button', { name: 'Show' }).click();
    await page.getByRole('heading', { name: new RegExp(`As of position ${first}`) }).waitFor();
    await eventually(async () => /5.*global.*1/.test(await row.textContent()), { what: 'the value at the first position' });
    assert.match(page.url(), new RegExp(`position=${first}`));
    await assertAccessible(page, 'resolved view in the past');

    await page.goto(`${env.url}/studio/namespaces/past/resolved?at=${encodeURIComponent(between.toISOString())}`);
    await eventually(async () => /5.*global.*1/.test(await row.textContent()), { what: 'the value at the time' });
    await page.getByRole('button', { name: 'Back to now' }).click();
    await eventually(async () => /60.*global.*2/.test(await row.textContent()), { what: 'the value now' });
    assertClean(page);
    await page.close();
  });

  test('a tenant admin sees its own tenant and not another', async () => {
    await namespaceWithLayer('tenants', { limit: 5 });
    await admin.put('/v1/namespaces/tenants/layer?tenant=acme', { values: { limit: 11 }, message: 'acme' });
    await admin.put('/v1/namespaces/tenants/layer?tenant=globex', { values: { limit: 22 }, message: 'globex' });
    const token = await issueToken({ name: 'acme-admin', role: 'tenant-admin', tenant: 'acme' });
    const page = await newPage(env.context);
    await signIn(page, token);
    assert.equal(await page.getByTestId('role').textContent(), 'tenant-admin');
    assert.match(await page.getByTestId('role-scope').textContent(), /tenant acme/);
    await page.getByRole('link', { name: 'Audit log' }).waitFor({ state: 'detached' });
    await page.getByRole('link', { name: 'Tenants', exact: true }).click();
    await page.locator('tr[data-tenant="acme"]').waitFor();
    assert.equal(await page.locator('tr[data-tenant]').count(), 1, 'only its own tenant');
    assert.match(await page.locator('tr[data-tenant="acme"]').textContent(), /pro/);

    await page.goto(`${env.url}/studio/namespaces/tenants`);
    const tenant = page.getByLabel('Tenant');
    assert.equal(await tenant.inputValue(), 'acme');
    assert.equal(await tenant.getAttribute('readonly'), '');
    await page.getByRole('link', { name: 'Resolved for tenant=acme' }).click();
    const row = page.locator('tr[data-pointer="/limit"]');
    await eventually(async () => /11.*tenant=acme/.test(await row.textContent()), { what: "acme's value" });

    await page.goto(`${env.url}/studio/namespaces/tenants/resolved?tenant=globex`);
    await page.getByRole('alert').getByText('does not exist, or your role may not see it').waitFor();
    assert.equal(await page.locator('tr[data-pointer]').count(), 0, 'no value of globex shows');
    await page.goto(`${env.url}/studio/namespaces/tenants/layer?tenant=globex`);
    await page.getByRole('alert').getByText('does not exist, or your role may not see it').waitFor();
    await page.goto(`${env.url}/studio/namespaces/tenants/history?tenant=globex`);
    await page.getByRole('alert').getByText('does not exist, or your role may not see it').waitFor();
    assert.equal(await page.locator('tr[data-revision]').count(), 0, 'no revision of globex shows');
    await assertAccessible(page, 'refusal');
    assertClean(page);
    await page.close();
  });

  test('a change under an approval policy applies when a second user approves it', async () => {
    const ns = await admin.put('/v1/namespaces/approvals', { description: 'Needs two people in prod', schema: SCHEMA, approval: { scopes: [{ env: 'prod' }] } });
    assert.ok(ns.status < 300, JSON.stringify(ns.body));
    const author = await issueToken({ name: 'author', role: 'editor', namespaces: ['approvals'] });
    const approver = await issueToken({ name: 'approver', role: 'editor', namespaces: ['approvals'] });

    const page = await newPage(env.context);
    await signIn(page, author);
    await page.goto(`${env.url}/studio/namespaces/approvals/layer?env=prod`);
    await page.getByLabel('Cart limit').fill('77');
    await page.getByLabel('Change message').fill('prod wants 77');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Your change awaits approval').waitFor();
    assert.equal((await admin.get('/v1/namespaces/approvals/layer?env=prod')).status, 404, 'nothing applied yet');
    await page.getByRole('link', { name: 'See the change requests.' }).click();
    const own = page.locator('[data-change-request]').first();
    await own.getByRole('button', { name: 'Withdraw' }).waitFor();
    assert.equal(await own.getByRole('button', { name: 'Approve' }).count(), 0, 'no self-approval offered');
    await page.close();

    const second = await newPage(env.context);
    await signIn(second, approver);
    await second.goto(`${env.url}/studio/change-requests?status=open`);
    const request = second.locator('[data-change-request]').first();
    await request.getByText('prod wants 77').waitFor();
    await request.getByRole('button', { name: 'Show what it changes' }).click();
    await request.locator('td.line.added', { hasText: '77' }).waitFor();
    await assertAccessible(second, 'change request with its diff');
    await request.getByLabel('Reason').fill('looks right');
    await request.getByRole('button', { name: 'Approve' }).click();
    await second.getByText(/approved\./).waitFor();
    const layer = await admin.get('/v1/namespaces/approvals/layer?env=prod');
    assert.equal(layer.status, 200);
    assert.equal(layer.body.values.limit, 77);
    assertClean(second);
    await second.close();
  });

  test('a flag change under an approval policy waits for a second user and then applies', async () => {
    const ns = await admin.put('/v1/namespaces/flags-approved', { kind: 'flags', description: 'Flags needing two people', approval: { scopes: [{}] } });
    assert.ok(ns.status < 300, JSON.stringify(ns.body));
    const author = await issueToken({ name: 'flag-author', role: 'editor', namespaces: ['flags-approved'] });
    const approver = await issueToken({ name: 'flag-approver', role: 'editor', namespaces: ['flags-approved'] });

    const page = await newPage(env.context);
    await signIn(page, author);
    await page.goto(`${env.url}/studio/namespaces/flags-approved/flags`);
    await page.getByText('This layer sets no flags.').waitFor();
    await page.getByLabel('New flag key').fill('beta');
    await page.getByRole('button', { name: 'Add the flag (off until turned on)' }).click();
    await page.getByLabel('State of beta').selectOption('ENABLED');
    await page.getByLabel('Change message').fill('beta for everyone');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Your change awaits approval').waitFor();
    assert.equal((await admin.get('/v1/namespaces/flags-approved/layer')).status, 404, 'nothing applied yet');
    assertClean(page);
    await page.close();

    const second = await newPage(env.context);
    await signIn(second, approver);
    await second.goto(`${env.url}/studio/change-requests?status=open`);
    const request = second.locator('[data-change-request]', { hasText: 'beta for everyone' }).first();
    await request.getByLabel('Reason').fill('ok');
    await request.getByRole('button', { name: 'Approve' }).click();
    await second.getByText(/approved\./).waitFor();
    const layer = await admin.get('/v1/namespaces/flags-approved/layer');
    assert.equal(layer.body.values.flags.beta.state, 'ENABLED');
    await second.goto(`${env.url}/studio/namespaces/flags-approved/flags`);
    await eventually(async () => (await second.getByLabel('State of beta').inputValue()) === 'ENABLED', { what: 'the applied flag' });
    assertClean(second);
    await second.close();
  });

  test('the resolved view updates live after a write through the API', async () => {
    await namespaceWithLayer('live', { limit: 5 });
    const page = await newPage(env.context);
    await signIn(page);
    await page.goto(`${env.url}/studio/namespaces/live/resolved?tenant=acme`);
    const row = page.locator('tr[data-pointer="/limit"]');
    await eventually(async () => /5.*global.*1/.test(await row.textContent()), { what: 'the first value' });
    await page.getByTestId('live').getByText('live').waitFor();
    const write = await admin.put('/v1/namespaces/live/layer?tenant=acme', { values: { limit: 31 }, message: 'from the API' });
    assert.equal(write.status, 201, JSON.stringify(write.body));
    await eventually(async () => /31.*tenant=acme.*1/.test(await row.textContent()), { what: 'the page to show the new value without a reload' });
    assertClean(page);
    await page.close();
  });

  test('tenants, change requests and the audit log pass axe', async () => {
    const page = await newPage(env.context);
    await signIn(page);
    await page.getByRole('link', { name: 'Tenants', exact: true }).click();
    await page.locator('tr[data-tenant="globex"]').waitFor();
    assert.match(await page.locator('tr[data-tenant="globex"]').textContent(), /standard/);
    await assertAccessible(page, 'tenants');
    await page.getByRole('link', { name: 'Change requests' }).click();
    await page.getByRole('heading', { name: 'Change requests' }).waitFor();
    await assertAccessible(page, 'change requests');
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByRole('heading', { name: 'Audit log' }).waitFor();
    await page.locator('table.audit').waitFor();
    await assertAccessible(page, 'audit log');
    assertClean(page);
    await page.close();
  });

  test('the catalogue search finds values a role may read, and only those', async () => {
    await namespaceWithLayer('search', { limit: 5, banner: 'Polar sale' });
    assert.ok((await admin.put('/v1/namespaces/search/layer?tenant=acme', { values: { banner: 'Acme polar week' }, message: 'acme' })).status < 300);
    assert.ok((await admin.put('/v1/namespaces/search/layer?tenant=globex', { values: { banner: 'Globex polar days' }, message: 'globex' })).status < 300);
    const page = await newPage(env.context);
    await signIn(page);
    await page.getByLabel('Search namespaces, keys and values').fill('polar');
    await page.getByText('3 values match').waitFor();
    await assertAccessible(page, 'catalogue with value matches');
    const acmeRow = page.locator('tr[data-match="search tenant=acme /banner"]');
    assert.match(await acmeRow.textContent(), /Acme polar week/);
    await acmeRow.getByRole('link', { name: 'tenant=acme' }).click();
    await page.getByLabel('Layer values as JSON').waitFor();
    assert.match(page.url(), /\/namespaces\/search\/layer\?tenant=acme$/);
    await page.close();

    // A tenant admin finds its own tenant's value, never another's.
    const acme = await issueToken({ name: 'acme-searcher', role: 'tenant-admin', tenant: 'acme' });
    const tenantPage = await newPage(env.context);
    await signIn(tenantPage, acme);
    await tenantPage.getByLabel('Search namespaces, keys and values').fill('polar');
    await tenantPage.getByText('1 value matches').waitFor();
    await tenantPage.locator('tr[data-match="search tenant=acme /banner"]').waitFor();
    assert.equal(await tenantPage.getByText('Globex polar days').count(), 0);
    assertClean(tenantPage);
    await tenantPage.close();
  });

  test("a tenant's history lists its layer changes across namespaces, newest first", async () => {
    await namespaceWithLayer('timeline-a', { limit: 1 });
    await namespaceWithLayer('timeline-b', { limit: 2 });
    for (const [ns, scope, limit] of [
      ['timeline-a', 'tenant=acme', 3],
      ['timeline-b', 'tenant=globex', 4],
      ['timeline-b', 'tenant=acme&env=prod', 5],
    ]) {
      const r = await admin.put(`/v1/namespaces/${ns}/layer?${scope}`, { values: { limit }, message: `${ns} ${limit}` });
      assert.ok(r.status < 300, JSON.stringify(r.body));
    }
    const acme = await issueToken({ name: 'acme-timeline', role: 'tenant-admin', tenant: 'acme' });
    const page = await newPage(env.context);
    await signIn(page, acme);
    await page.getByRole('link', { name: 'Tenants', exact: true }).click();
    await page.getByRole('link', { name: 'History of acme' }).click();
    await page.getByRole('heading', { name: 'History of tenant acme' }).waitFor();
    const rows = page.locator('table.timeline tbody tr');
    await rows.first().waitFor();
    const changes = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-change')));
    const mine = changes.filter((c) => c.startsWith('timeline-'));
    assert.deepEqual(mine, ['timeline-b env=prod&tenant=acme 1', 'timeline-a tenant=acme 1']);
    assert.equal(await page.getByText('timeline-b 4').count(), 0, "globex's change is not shown");
    await assertAccessible(page, 'tenant history');
    await page.locator('tr[data-change="timeline-a tenant=acme 1"]').getByRole('link', { name: 'tenant=acme' }).click();
    await page.getByRole('heading', { name: /History/ }).first().waitFor();
    assert.match(page.url(), /\/namespaces\/timeline-a\/history\?tenant=acme$/);
    assertClean(page);
    await page.close();
  });

  test('the audit log exports every entry its filters select', async () => {
    // A refused write by a viewer gives the filter something to select.
    const viewer = await issueToken({ name: 'audit-viewer', role: 'viewer', namespaces: ['signin'] });
    const refused = await api(env.url, viewer).put('/v1/tenants/initrode', { edition: 'pro' });
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    const page = await newPage(env.context);
    await signIn(page);
    await page.goto(`${env.url}/studio/audit?outcome=refused`);
    await page.locator('table.audit').waitFor();
    const shown = await page.locator('table.audit tbody tr').count();
    assert.ok(shown > 0, 'the refusal is listed');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: /Export these entries/ }).click(),
    ]);
    assert.match(download.suggestedFilename(), /^audit_outcome-refused_.*\.jsonl$/);
    const text = readFileSync(await download.path(), 'utf8');
    const entries = text.trim().split('\n').map((line) => JSON.parse(line));
    assert.equal(entries.length, shown, 'the file holds what the screen lists');
    assert.ok(entries.every((e) => e.outcome === 'refused'), 'only refused entries');
    assert.ok(entries.some((e) => String(e.action).includes('/v1/tenants/')), `the refused tenant write is in the file: ${text}`);
    await page.getByRole('status').filter({ hasText: 'Exported every matching entry' }).waitFor();
    await assertAccessible(page, 'audit log after an export');
    assertClean(page);
    await page.close();
  });

  test('an admin creates a tenant and changes its edition; a stale create is refused', async () => {
    const page = await newPage(env.context);
    await signIn(page);
    await page.goto(`${env.url}/studio/tenants`);
    await page.locator('tr[data-tenant="acme"]').waitFor();
    await page.getByLabel('Tenant id').fill('initech');
    await page.getByLabel('Name (optional)').fill('Initech');
    await page.getByLabel('Edition').fill('standard');
    await assertAccessible(page, 'tenants with the create form');
    await page.getByRole('button', { name: 'Create tenant' }).click();
    await page.locator('tr[data-tenant="initech"]').waitFor();
    assert.match(await page.locator('tr[data-tenant="initech"]').textContent(), /Initech.*standard/);

    await page.getByRole('button', { name: 'Edit tenant initech' }).click();
    await page.getByRole('heading', { name: 'Change tenant initech' }).waitFor();
    await page.locator('#tenant-edit-edition').fill('pro');
    await assertAccessible(page, 'tenants with the edit form');
    await page.getByRole('button', { name: 'Save tenant' }).click();
    await eventually(async () => /Initech.*pro/.test(await page.locator('tr[data-tenant="initech"]').textContent()), {
      what: 'the new edition in the table',
    });
    const stored = await admin.get('/v1/tenants/initech');
    assert.equal(stored.body.edition, 'pro');
    assert.equal(stored.body.name, 'Initech');

    // Creating a tenant that exists is refused, never an overwrite.
    await page.getByLabel('Tenant id').fill('acme');
    await page.getByLabel('Edition').fill('free');
    await page.getByRole('button', { name: 'Create tenant' }).click();
    await page.getByRole('alert').filter({ hasText: /changed this since/i }).waitFor();
    assert.equal((await admin.get('/v1/tenants/acme')).body.edition, 'pro');
    assertClean(page);
    await page.close();
  });

  test('a role that may not administer is offered no tenant change', async () => {
    const viewer = await issueToken({ name: 'tenant-viewer', role: 'viewer', namespaces: ['signin'] });
    const page = await newPage(env.context);
    await signIn(page, viewer);
    await page.goto(`${env.url}/studio/tenants`);
    await page.locator('tr[data-tenant="acme"]').waitFor();
    assert.equal(await page.getByRole('button', { name: /Edit tenant/ }).count(), 0);
    assert.equal(await page.getByRole('button', { name: 'Create tenant' }).count(), 0);
    assertClean(page);
    await page.close();
  });

  test('keyboard alone: sign in, open a namespace, edit and save a layer', async () => {
    await namespaceWithLayer('keyboard', { limit: 5 }, 'Edited with the keyboard alone');
    const page = await newPage(env.context);
    await page.goto(`${env.url}/studio/`);
    await page.getByLabel('Token').waitFor();
    await tabTo(page, /^Token$/);
    await page.keyboard.type(ADMIN_TOKEN);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Namespaces', level: 1 }).waitFor();

    await tabTo(page, /^keyboard$/);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: /keyboard/, level: 1 }).waitFor();
    await tabTo(page, /^Edit layer/);
    await page.keyboard.press('Enter');
    await page.getByLabel('Cart limit').waitFor();
    await page.getByLabel('Layer values as JSON').waitFor();

    await tabTo(page, /^Cart limit/);
    await page.keyboard.press('Control+A');
    await page.keyboard.type('64');
    // The raw JSON editor lies between the form and the change message: Tab
    // must move through it, not be kept in it as an indent.
    await tabTo(page, /^Change message/);
    await page.keyboard.type('raised from the keyboard');
    await tabTo(page, /^Save/);
    await page.keyboard.press('Enter');
    await page.getByText('Saved as revision 2').waitFor();
    const layer = await admin.get('/v1/namespaces/keyboard/layer');
    assert.equal(layer.body.values.limit, 64);
    assert.equal(layer.body.message, 'raised from the keyboard');
    assertClean(page);
    await page.close();
  });
});

/**
 * Presses Tab until the focused control's name matches `name`, as a person
 * without a mouse would; fails if it is never reached.
 */
async function tabTo(page, name, most = 80) {
  const seen = [];
  for (let i = 0; i < most; i++) {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => {
      let el = document.activeElement;
      // The JSON editor lives in a shadow root: look inside it.
      while (el?.shadowRoot?.activeElement) el = el.shadowRoot.activeElement;
      if (!el || el === document.body) return '';
      const labelled = el.getAttribute('aria-labelledby');
      const byId = labelled ? document.getElementById(labelled)?.textContent : null;
      return (el.getAttribute('aria-label') ?? el.labels?.[0]?.textContent ?? byId ?? el.textContent ?? '').trim();
    });
    seen.push(focused);
    if (name.test(focused)) return;
  }
  assert.fail(`Tab never reached ${name}; focus went through: ${JSON.stringify(seen)}`);
}
