// Signing in through the configured OIDC issuer: what `GET /v1/auth/config`
// says, and the settings of the authorization-code + PKCE flow
// (`oidc-client-ts`, loaded only when someone signs in this way). The access
// token the issuer answers is used as the bearer token, as a pasted JWT is.

import { BASE } from './routes';
import type { Fetch } from './api';
import { problemFrom } from './problem';

export interface OidcConfig {
  issuer: string;
  client_id: string;
  scopes: string;
}

export interface AuthConfig {
  oidc: OidcConfig | null;
}

/** How this server lets people sign in (a public route: no token). */
export async function fetchAuthConfig(fetcher: Fetch = (input, init) => fetch(input, init)): Promise<AuthConfig> {
  const response = await fetcher('/v1/auth/config', { headers: { Accept: 'application/json' } });
  if (!response.ok) throw problemFrom(response.status, await response.text());
  return (await response.json()) as AuthConfig;
}

/** The address the issuer sends the browser back to. */
export function callbackUrl(origin: string): string {
  return `${origin}${BASE}/signin/callback`;
}

/** The issuer as a person recognises it: its host (and path when it has one). */
export function issuerName(issuer: string): string {
  try {
    const url = new URL(issuer);
    const path = url.pathname.replace(/\/+$/, '');
    return `${url.host}${path}`;
  } catch {
    return issuer;
  }
}

/** `oidc-client-ts` settings: authorization code with PKCE, nothing renewed in the background. */
export function userManagerSettings(config: OidcConfig, origin: string) {
  return {
    authority: config.issuer,
    client_id: config.client_id,
    redirect_uri: callbackUrl(origin),
    response_type: 'code',
    scope: config.scopes,
    loadUserInfo: false,
    automaticSilentRenew: false,
    monitorSession: false,
  };
}
