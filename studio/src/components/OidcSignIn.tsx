import { useEffect, useRef, useState } from 'react';
import { issuerName, userManagerSettings, type OidcConfig } from '../lib/oidc';
import { ErrorNotice, Loading } from './Notice';

// oidc-client-ts loads only when someone signs in through the issuer, so the
// first screen stays small.
async function userManager(config: OidcConfig) {
  const { UserManager } = await import('oidc-client-ts');
  return new UserManager(userManagerSettings(config, window.location.origin));
}

/** "Sign in with <issuer>": off to the issuer (authorization code + PKCE). */
export function OidcSignInButton({ config }: { config: OidcConfig }) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const go = async () => {
    setBusy(true);
    setError(null);
    try {
      await (await userManager(config)).signinRedirect();
    } catch (e) {
      setError(new Error(`Your identity provider could not be reached: ${(e as Error).message}`));
      setBusy(false);
    }
  };
  return (
    <div className="oidc">
      <button type="button" onClick={() => void go()} disabled={busy}>
        Sign in with {issuerName(config.issuer)}
      </button>
      <ErrorNotice error={error} />
    </div>
  );
}

/**
 * Where the issuer sends the browser back: the code is exchanged for tokens
 * (with the PKCE verifier kept in this tab), and the access token signs in as
 * a pasted token would.
 */
export function OidcCallback({ config, onSignIn }: { config: OidcConfig | null; onSignIn: (token: string) => Promise<void> }) {
  const [error, setError] = useState<unknown>(null);
  const started = useRef(false);
  useEffect(() => {
    if (!config || started.current) return;
    // The code is single-use: exchange it once, even when React runs effects twice.
    started.current = true;
    userManager(config)
      .then(async (manager) => {
        const user = await manager.signinRedirectCallback();
        await manager.removeUser();
        await onSignIn(user.access_token);
      })
      .catch((e: unknown) => setError(e));
  }, [config, onSignIn]);
  if (!config) return <p className="notice error" role="alert">This server has no OIDC issuer configured: sign in with a token.</p>;
  if (error) {
    return (
      <>
        <p className="notice error" role="alert">
          Signing in with {issuerName(config.issuer)} did not succeed.
        </p>
        <ErrorNotice error={error} />
      </>
    );
  }
  return <Loading what={`your sign-in with ${issuerName(config.issuer)}`} />;
}
