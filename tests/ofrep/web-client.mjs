// OpenFeature's web SDK and OFREP web provider evaluating ECS flags, in
// Node.js with the `eventsource` package as the browser's EventSource. Run by
// tests/tests/it/flags.rs against a server it filled with the flags below;
// ECS_URL and ECS_TOKEN say where and as whom. Checks every type, a targeted
// rule, a rollout, a disabled and a missing flag; that a re-fetch whose
// evaluations did not change answers 304 (ETag); and that a change written
// through the API reaches the provider over OFREP's event stream.
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import { OpenFeature, ProviderEvents } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';

globalThis.EventSource = EventSource;
const base = process.env.ECS_URL;
const token = process.env.ECS_TOKEN;

// Every bulk request the provider makes, with its answer's status.
const statuses = [];
const waiting = [];
function recorded(status) {
  statuses.push(status);
  for (const w of waiting.splice(0)) w();
}
async function until(done) {
  while (!done()) await new Promise((resolve) => waiting.push(resolve));
}
async function recordingFetch(input, init) {
  const response = await fetch(input, init);
  recorded(response.status);
  return response;
}

const provider = new OFREPWebProvider({
  baseUrl: base,
  headers: [['X-API-Key', token]],
  cacheMode: 'disabled',
  fetchImplementation: recordingFetch,
});
await OpenFeature.setContext({ targetingKey: 'user-1', tenant: 'acme' });
await OpenFeature.setProviderAndWait(provider);
const client = OpenFeature.getClient();

const checks = [];
function check(name, details, value, reason) {
  checks.push(name);
  assert.equal(details.errorCode, undefined, `${name}: ${JSON.stringify(details)}`);
  assert.deepEqual(details.value, value, `${name}: ${JSON.stringify(details)}`);
  if (reason) assert.equal(details.reason, reason, `${name}: ${JSON.stringify(details)}`);
}

assert.equal(statuses[0], 200, `the first bulk evaluation: ${statuses}`);
check('edition layer (boolean)', client.getBooleanDetails('new-checkout', false), true);
check('string', client.getStringDetails('banner', 'none'), 'hello', 'STATIC');
check('number', client.getNumberDetails('limit', 0), 10, 'STATIC');
check('object', client.getObjectDetails('theme', {}), { bg: 'black' }, 'STATIC');
const disabled = client.getBooleanDetails('retired', true);
assert.equal(disabled.value, true, JSON.stringify(disabled));
assert.equal(disabled.reason, 'DISABLED', JSON.stringify(disabled));
checks.push('disabled');
const missing = client.getBooleanDetails('nope', true);
assert.equal(missing.value, true);
assert.equal(missing.errorCode, 'FLAG_NOT_FOUND', JSON.stringify(missing));
checks.push('missing');

// The web SDK's context is static: a new context re-fetches the bulk answer.
await OpenFeature.setContext({ targetingKey: 'u', email: 'jo@acme.example' });
check('targeted rule', client.getBooleanDetails('new-checkout', false), true, 'TARGETING_MATCH');
const seen = new Set();
for (let i = 0; i < 20; i++) {
  await OpenFeature.setContext({ targetingKey: `user-${i}` });
  const first = client.getBooleanDetails('rollout', false);
  assert.equal(first.reason, 'SPLIT', JSON.stringify(first));
  seen.add(first.value);
}
assert.deepEqual([...seen].sort(), [false, true]);
checks.push('percentage rollout');
await OpenFeature.setContext({ targetingKey: 'user-1', tenant: 'acme' });

async function patchFlags(flags) {
  const response = await fetch(`${base}/v1/namespaces/flags/layer`, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ values: { flags } }),
  });
  assert.equal(response.status, 200, await response.text());
}

// A change that leaves this context's evaluations as they were: the stream
// notifies, the provider re-fetches with If-None-Match, and ECS answers 304.
const before = statuses.length;
await patchFlags({ limit: { variants: { mid: 50 } } });
await until(() => statuses.slice(before).includes(304));
check('unchanged after 304', client.getNumberDetails('limit', 0), 10, 'STATIC');
checks.push('etag 304');

// A change that does: the provider re-fetches and says the configuration changed.
const changed = new Promise((resolve) =>
  client.addHandler(ProviderEvents.ConfigurationChanged, resolve),
);
await patchFlags({ banner: { defaultVariant: 'b' } });
await changed;
check('change seen', client.getStringDetails('banner', 'none'), 'bye', 'STATIC');

await OpenFeature.close();
console.log(`${checks.length} checks passed: ${checks.join(', ')}`);
process.exit(0);
