// OpenFeature's own Node.js SDK and OFREP provider evaluating ECS flags.
// Run by tests/tests/it/flags.rs against a running server that it filled with
// the flags below; ECS_URL and ECS_TOKEN say where and as whom. Exits non-zero
// on the first answer that differs from what the flags define.
import assert from 'node:assert/strict';
import { OpenFeature } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';

const provider = new OFREPProvider({
  baseUrl: process.env.ECS_URL,
  headers: [['X-API-Key', process.env.ECS_TOKEN]],
});
await OpenFeature.setProviderAndWait(provider);
const client = OpenFeature.getClient();
const acme = { targetingKey: 'user-1', tenant: 'acme' };

const checks = [];
async function check(name, details, value, reason) {
  checks.push(name);
  assert.equal(details.errorCode, undefined, `${name}: ${JSON.stringify(details)}`);
  assert.deepEqual(details.value, value, `${name}: ${JSON.stringify(details)}`);
  if (reason) assert.equal(details.reason, reason, `${name}: ${JSON.stringify(details)}`);
}

await check('boolean', await client.getBooleanDetails('new-checkout', false, { email: 'x@y.z' }), false, 'DEFAULT');
await check('string', await client.getStringDetails('banner', 'none', acme), 'hello', 'STATIC');
await check('number', await client.getNumberDetails('limit', 0, acme), 10, 'STATIC');
await check('object', await client.getObjectDetails('theme', {}, acme), { bg: 'black' }, 'STATIC');
await check(
  'targeted rule',
  await client.getBooleanDetails('new-checkout', false, { targetingKey: 'u', email: 'jo@acme.example' }),
  true,
  'TARGETING_MATCH',
);
await check('edition layer', await client.getBooleanDetails('new-checkout', false, acme), true);

// A percentage rollout: the same user always gets the same answer, and a
// hundred users are split between both variants.
const seen = new Set();
for (let i = 0; i < 100; i++) {
  const ctx = { targetingKey: `user-${i}` };
  const first = await client.getBooleanDetails('rollout', false, ctx);
  const again = await client.getBooleanDetails('rollout', false, ctx);
  assert.equal(first.reason, 'SPLIT', JSON.stringify(first));
  assert.equal(first.value, again.value);
  seen.add(first.value);
}
assert.deepEqual([...seen].sort(), [false, true]);
checks.push('percentage rollout');

// A disabled flag answers OFREP's "code default" (reason DISABLED, no
// value), so the caller's default is the value. The newest
// @openfeature/ofrep-provider on npm (0.1.3, on @openfeature/ofrep-core 0.1)
// predates code-default answers and reports them as an error with the code
// default; ofrep-core 2 reports DISABLED. Either way the value is the default.
for (const codeDefault of [false, true]) {
  const disabled = await client.getBooleanDetails('retired', codeDefault, acme);
  assert.equal(disabled.value, codeDefault, JSON.stringify(disabled));
  assert.ok(['DISABLED', 'ERROR'].includes(disabled.reason), JSON.stringify(disabled));
}
checks.push('disabled flag');

const missing = await client.getStringDetails('nope', 'code default', acme);
assert.equal(missing.value, 'code default', JSON.stringify(missing));
assert.equal(missing.errorCode, 'FLAG_NOT_FOUND', JSON.stringify(missing));
checks.push('missing flag');

await OpenFeature.close();
console.log(`ofrep node client: ${checks.length} checks passed: ${checks.join(', ')}`);
