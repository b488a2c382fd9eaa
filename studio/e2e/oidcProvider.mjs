// A minimal OpenID Connect provider for the end-to-end tests, on loopback:
// a discovery document, a JWKS, an authorization endpoint that signs the
// configured user in at once (redirecting back with a code), and a token
// endpoint that checks the code, the redirect and the PKCE verifier
// (S256) before it answers RS256-signed tokens from a key generated here.
// It is what an identity provider does for Studio's authorization-code +
// PKCE flow, and nothing more.

import { createHash, createSign, generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';

const b64url = (data) => Buffer.from(data).toString('base64url');

/**
 * Starts the provider; `claims` are added to every access token (the ECS role).
 * Returns its `issuer`, `jwksFile` (for ECS_JWT_JWKS_FILE), the `requests` it
 * saw and `stop()`.
 */
export async function startOidcProvider({ jwksFile, clientId, subject, claims }) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = `e2e-${randomBytes(4).toString('hex')}`;
  writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' }] }));
  const sign = (payload) => {
    const head = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid }));
    const body = b64url(JSON.stringify(payload));
    const signature = createSign('RSA-SHA256').update(`${head}.${body}`).sign(privateKey);
    return `${head}.${body}.${b64url(signature)}`;
  };
  const codes = new Map();
  const requests = [];
  let issuer = '';

  const server = createServer((req, res) => {
    const url = new URL(req.url, issuer);
    requests.push(`${req.method} ${url.pathname}`);
    const cors = { 'Access-Control-Allow-Origin': '*', 'Access-Control-Allow-Headers': 'Content-Type, Authorization', 'Access-Control-Allow-Methods': 'GET, POST' };
    const json = (status, body) => {
      res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...cors });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'OPTIONS') {
      res.writeHead(204, cors);
      return res.end();
    }
    if (req.method === 'GET' && url.pathname === '/.well-known/openid-configuration') {
      return json(200, {
        issuer,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
        code_challenge_methods_supported: ['S256'],
        grant_types_supported: ['authorization_code'],
        token_endpoint_auth_methods_supported: ['none'],
      });
    }
    if (req.method === 'GET' && url.pathname === '/jwks') {
      return json(200, { keys: [{ ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' }] });
    }
    if (req.method === 'GET' && url.pathname === '/authorize') {
      const p = url.searchParams;
      if (p.get('client_id') !== clientId || p.get('response_type') !== 'code' || p.get('code_challenge_method') !== 'S256' || !p.get('code_challenge')) {
        res.writeHead(400, { 'Content-Type': 'text/plain' });
        return res.end('bad authorization request');
      }
      const code = randomBytes(16).toString('hex');
      codes.set(code, { challenge: p.get('code_challenge'), redirect: p.get('redirect_uri'), nonce: p.get('nonce'), scope: p.get('scope') });
      const back = new URL(p.get('redirect_uri'));
      back.searchParams.set('code', code);
      if (p.get('state')) back.searchParams.set('state', p.get('state'));
      res.writeHead(302, { Location: back.toString() });
      return res.end();
    }
    if (req.method === 'POST' && url.pathname === '/token') {
      let text = '';
      req.on('data', (chunk) => (text += chunk));
      req.on('end', () => {
        const form = new URLSearchParams(text);
        const grant = codes.get(form.get('code'));
        codes.delete(form.get('code'));
        const verifier = form.get('code_verifier') ?? '';
        if (
          form.get('grant_type') !== 'authorization_code' ||
          !grant ||
          grant.redirect !== form.get('redirect_uri') ||
          form.get('client_id') !== clientId ||
          b64url(createHash('sha256').update(verifier).digest()) !== grant.challenge
        ) {
          return json(400, { error: 'invalid_grant' });
        }
        const now = Math.floor(Date.now() / 1000);
        const common = { iss: issuer, sub: subject, iat: now, exp: now + 600 };
        json(200, {
          token_type: 'Bearer',
          expires_in: 600,
          scope: grant.scope,
          access_token: sign({ ...common, aud: clientId, ...claims }),
          id_token: sign({ ...common, aud: clientId, ...(grant.nonce ? { nonce: grant.nonce } : {}) }),
        });
      });
      return;
    }
    json(404, { error: 'not_found' });
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  issuer = `http://127.0.0.1:${server.address().port}`;
  return {
    issuer,
    jwksFile,
    requests,
    stop: () => new Promise((ok) => server.close(() => ok())),
  };
}
