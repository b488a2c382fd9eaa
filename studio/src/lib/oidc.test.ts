import { describe, expect, it } from 'vitest';
import { ApiProblem } from './problem';
import { callbackUrl, fetchAuthConfig, issuerName, userManagerSettings } from './oidc';

const config = { issuer: 'https://idp.example.test/realms/ecs/', client_id: 'ecs-studio', scopes: 'openid profile' };

describe('OIDC sign-in', () => {
  it('comes back to Studio’s own callback address', () => {
    expect(callbackUrl('http://127.0.0.1:8080')).toBe('http://127.0.0.1:8080/studio/signin/callback');
  });

  it('names the issuer by its host and path', () => {
    expect(issuerName(config.issuer)).toBe('idp.example.test/realms/ecs');
    expect(issuerName('http://127.0.0.1:9000')).toBe('127.0.0.1:9000');
    expect(issuerName('not a url')).toBe('not a url');
  });

  it('asks for an authorization code (PKCE) with the configured client and scopes, renewing nothing in the background', () => {
    expect(userManagerSettings(config, 'https://ecs.example.test')).toEqual({
      authority: config.issuer,
      client_id: 'ecs-studio',
      redirect_uri: 'https://ecs.example.test/studio/signin/callback',
      response_type: 'code',
      scope: 'openid profile',
      loadUserInfo: false,
      automaticSilentRenew: false,
      monitorSession: false,
    });
  });

  it('reads the configuration without a token, and a refusal as a problem', async () => {
    const seen: [string, RequestInit | undefined][] = [];
    const ok = await fetchAuthConfig(async (input, init) => {
      seen.push([input, init]);
      return new Response(JSON.stringify({ oidc: config }), { status: 200 });
    });
    expect(ok).toEqual({ oidc: config });
    expect(seen[0]?.[0]).toBe('/v1/auth/config');
    expect(new Headers(seen[0]?.[1]?.headers).has('Authorization')).toBe(false);
    await expect(fetchAuthConfig(async () => new Response('{"detail":"down"}', { status: 503 }))).rejects.toBeInstanceOf(ApiProblem);
  });
});
