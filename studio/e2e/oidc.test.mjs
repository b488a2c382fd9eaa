// Signing in to Studio through an OIDC issuer (authorization code + PKCE):
// a real ECS server that verifies the issuer's tokens with its JWKS, a
// minimal identity provider on loopback, and headless Chromium.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { axeViolations, newPage, start } from './harness.mjs';
import { startOidcProvider } from './oidcProvider.mjs';

const CLIENT_ID = 'ecs-studio';
let env;
let provider;
let work;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'ecs-studio-oidc-'));
  provider = await startOidcProvider({
    jwksFile: join(work, 'jwks.json'),
    clientId: CLIENT_ID,
    subject: 'pat',
    claims: { ecs_role: { role: 'tenant-admin', tenant: 'acme' } },
  });
  env = await start({
    ecsEnv: {
      ECS_JWT_JWKS_FILE: provider.jwksFile,
      ECS_JWT_ISSUER: provider.issuer,
      ECS_JWT_AUDIENCE: CLIENT_ID,
      ECS_OIDC_CLIENT_ID: CLIENT_ID,
      ECS_OIDC_SCOPES: 'openid profile',
    },
    allowedOrigins: [provider.issuer],
  });
});

after(async () => {
  await env?.stop();
  await provider?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('Config Studio with an OIDC issuer', () => {
  test('signs in with the issuer and shows the role its token grants', async () => {
    const page = await newPage(env.context);
    await page.goto(`${env.url}/studio/`);
    const host = new URL(provider.issuer).host;
    const button = page.getByRole('button', { name: `Sign in with ${host}` });
    await button.waitFor();
    // The token form stays for API keys.
    await page.getByLabel('Token').waitFor();
    assert.deepEqual(await axeViolations(page), [], 'axe on the sign-in screen with an issuer');

    await button.click();
    await page.getByRole('heading', { name: 'Namespaces', level: 1 }).waitFor();
    assert.equal(new URL(page.url()).pathname, '/studio/namespaces', 'the callback address is left behind');
    assert.equal(await page.getByTestId('role').textContent(), 'tenant-admin');
    assert.match(await page.getByTestId('role-scope').textContent(), /acme/);
    assert.match(await page.getByLabel('Signed in as').textContent(), /jwt:pat/);
    assert.deepEqual(await axeViolations(page), [], 'axe on the first screen after an OIDC sign-in');
    // The flow went through discovery, the authorization endpoint and the token endpoint (with PKCE).
    for (const step of ['GET /.well-known/openid-configuration', 'GET /authorize', 'POST /token']) {
      assert.ok(provider.requests.includes(step), `${step} in ${provider.requests.join(', ')}`);
    }

    // The session survives a reload; signing out ends it.
    await page.reload();
    await page.getByRole('heading', { name: 'Namespaces', level: 1 }).waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: `Sign in with ${host}` }).waitFor();

    assert.deepEqual(page.problems, [], 'no CSP violation or page error');
    assert.deepEqual(env.foreign, [], 'no request to a host other than ECS and the issuer');
    await page.close();
  });

  test('a callback without a valid code is refused in words', async () => {
    const tokenRequests = () => provider.requests.filter((r) => r === 'POST /token').length;
    const before = tokenRequests();
    const page = await newPage(env.context);
    await page.goto(`${env.url}/studio/signin/callback?code=forged&state=unknown`);
    await page.getByRole('alert').getByText(/did not succeed/).first().waitFor();
    assert.deepEqual(await axeViolations(page), [], 'axe on a refused callback');
    assert.equal(tokenRequests(), before, 'no token is asked for with a state this tab did not start');
    await page.getByRole('heading', { name: 'Signing in to ECS Config Studio' }).waitFor();
    await page.close();
  });
});
