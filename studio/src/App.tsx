import { lazy, Suspense, useEffect, useMemo, useState, type FormEvent } from 'react';
import { ErrorBoundary } from './components/ErrorBoundary';
import { Link } from './components/Link';
import { ErrorNotice, Loading } from './components/Notice';
import { OidcCallback, OidcSignInButton } from './components/OidcSignIn';
import { ApiClient, type WhoAmI } from './lib/api';
import { fetchAuthConfig, type AuthConfig } from './lib/oidc';
import { describeRole } from './lib/role';
import { href, parseRoute, type Route } from './lib/routes';
import { navigate, useLocation } from './navigation';
import { Namespaces } from './screens/Namespaces';
import { NamespacePage } from './screens/NamespacePage';
import { Resolved } from './screens/Resolved';
import { SessionContext, tokenStore, useSession, type Session } from './session';

// The editors (JSON-Schema forms, CodeMirror, diffs) load only when a screen needs them.
const LayerEditor = lazy(() => import('./screens/LayerEditor'));
const History = lazy(() => import('./screens/History'));
const ChangeRequests = lazy(() => import('./screens/ChangeRequests'));
const Audit = lazy(() => import('./screens/Audit'));
const Tenants = lazy(() => import('./screens/Tenants'));
const Drift = lazy(() => import('./screens/Drift'));
const Compare = lazy(() => import('./screens/Compare'));
const Flags = lazy(() => import('./screens/Flags'));
const TenantHistory = lazy(() => import('./screens/TenantHistory'));

export function App() {
  const location = useLocation();
  const route = parseRoute(location.pathname, location.search);
  const [session, setSession] = useState<Session | null>(null);
  const [checking, setChecking] = useState(() => tokenStore.load() !== null);
  // How else than a token one may sign in (an OIDC issuer), asked once.
  const [authConfig, setAuthConfig] = useState<AuthConfig | 'loading'>('loading');
  useEffect(() => {
    fetchAuthConfig().then(setAuthConfig, () => setAuthConfig({ oidc: null }));
  }, []);

  const open = (api: ApiClient, me: WhoAmI): Session => ({
    api,
    me,
    signOut: () => {
      tokenStore.clear();
      setSession(null);
      navigate(href({ screen: 'signin' }));
    },
  });

  const signIn = async (token: string): Promise<void> => {
    const api = new ApiClient(token);
    const me = await api.whoami();
    tokenStore.save(token);
    setSession(open(api, me));
  };

  useEffect(() => {
    // A token stored in this tab signs in again after a reload.
    const token = tokenStore.load();
    if (!token) return;
    const api = new ApiClient(token);
    api
      .whoami()
      .then(
        (me) => setSession(open(api, me)),
        () => tokenStore.clear(),
      )
      .finally(() => setChecking(false));
    // Only once, at start.
  }, []);

  useEffect(() => {
    const title = route.screen === 'signin' || !session ? 'Sign in' : screenTitle(route);
    document.title = `${title} · ECS Config Studio`;
  });

  if (checking) return <Loading what="your session" />;
  if (!session && route.screen === 'signin-callback') {
    return (
      <main id="main" className="signin">
        <h1>Signing in to ECS Config Studio</h1>
        {authConfig === 'loading' ? (
          <Loading what="the sign-in settings" />
        ) : (
          <OidcCallback
            config={authConfig.oidc}
            onSignIn={async (token) => {
              await signIn(token);
              navigate(href({ screen: 'namespaces', query: '' }), { replace: true });
            }}
          />
        )}
      </main>
    );
  }
  if (!session) {
    return (
      <SignIn
        authConfig={authConfig === 'loading' ? null : authConfig}
        onSignIn={async (token) => {
          await signIn(token);
          if (route.screen === 'signin') navigate(href({ screen: 'namespaces', query: '' }), { replace: true });
        }}
      />
    );
  }
  return (
    <SessionContext.Provider value={session}>
      <Header />
      <main id="main" tabIndex={-1}>
        <Suspense fallback={<Loading what="the editor" />}>
          <ErrorBoundary resetKey={location.pathname + location.search}>
            <Screen route={route} />
          </ErrorBoundary>
        </Suspense>
      </main>
    </SessionContext.Provider>
  );
}

function screenTitle(route: Route): string {
  switch (route.screen) {
    case 'namespaces':
      return 'Namespaces';
    case 'namespace':
      return `Namespace ${route.ns}`;
    case 'layer':
      return `Edit layer of ${route.ns}`;
    case 'resolved':
      return `Resolved ${route.ns}`;
    case 'history':
      return `History of ${route.ns}`;
    case 'change-requests':
      return 'Change requests';
    case 'audit':
      return 'Audit log';
    case 'tenants':
      return 'Tenants';
    case 'tenant-history':
      return `History of tenant ${route.tenant}`;
    case 'drift':
      return 'Drift';
    case 'compare':
      return `Compare ${route.ns}`;
    case 'flags':
      return `Flags of ${route.ns}`;
    default:
      return 'Not found';
  }
}

function Screen({ route }: { route: Route }) {
  switch (route.screen) {
    case 'signin':
    case 'signin-callback':
    case 'namespaces':
      return <Namespaces query={route.screen === 'namespaces' ? route.query : ''} />;
    case 'namespace':
      return <NamespacePage ns={route.ns} />;
    case 'layer':
      return <LayerEditor ns={route.ns} search={route.search} />;
    case 'resolved':
      return <Resolved ns={route.ns} search={route.search} />;
    case 'history':
      return <History ns={route.ns} search={route.search} />;
    case 'change-requests':
      return <ChangeRequests search={route.search} />;
    case 'audit':
      return <Audit search={route.search} />;
    case 'tenants':
      return <Tenants />;
    case 'tenant-history':
      return <TenantHistory tenant={route.tenant} />;
    case 'drift':
      return <Drift />;
    case 'compare':
      return <Compare ns={route.ns} search={route.search} />;
    case 'flags':
      return <Flags ns={route.ns} search={route.search} />;
    case 'not-found':
      return (
        <>
          <h1>Not found</h1>
          <p>
            Studio has no page at {route.path}. <Link href={href({ screen: 'namespaces', query: '' })}>Go to the namespaces.</Link>
          </p>
        </>
      );
  }
}

function Header() {
  const { me, signOut } = useSession();
  return (
    <header className="top">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <nav aria-label="Studio">
        <Link className="brand" href={href({ screen: 'namespaces', query: '' })}>
          ECS Config Studio
        </Link>
        <ul>
          <li>
            <Link href={href({ screen: 'namespaces', query: '' })}>Namespaces</Link>
          </li>
          <li>
            <Link href={href({ screen: 'tenants' })}>Tenants</Link>
          </li>
          <li>
            <Link href={href({ screen: 'change-requests', search: '' })}>Change requests</Link>
          </li>
          <li>
            <Link href={href({ screen: 'drift' })}>Drift</Link>
          </li>
          {me.may.read_audit && (
            <li>
              <Link href={href({ screen: 'audit', search: '' })}>Audit log</Link>
            </li>
          )}
        </ul>
      </nav>
      <Principal me={me} />
      <button type="button" className="secondary" onClick={signOut}>
        Sign out
      </button>
    </header>
  );
}

function Principal({ me }: { me: WhoAmI }) {
  return (
    <p className="principal" aria-label="Signed in as">
      <span className="who">{me.principal}</span>
      <span className="role-badge" data-testid="role">
        {me.role.role}
      </span>
      <span className="scope" data-testid="role-scope">
        {describeRole(me.role)}
      </span>
      {!me.may.write_layers && <span className="read-only">read only</span>}
    </p>
  );
}

function SignIn({ authConfig, onSignIn }: { authConfig: AuthConfig | null; onSignIn: (token: string) => Promise<void> }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await onSignIn(token.trim());
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const hint = useMemo(() => 'An ECS API key (ecs_…), a JWT from your identity provider, or the bootstrap admin token.', []);
  return (
    <main id="main" className="signin">
      <h1>Sign in to ECS Config Studio</h1>
      {authConfig?.oidc && (
        <>
          <OidcSignInButton config={authConfig.oidc} />
          <p className="or">or with a token:</p>
        </>
      )}
      <form onSubmit={submit} aria-describedby="token-hint">
        <div className="field">
          <label htmlFor="token">Token</label>
          <input id="token" name="token" type="password" autoComplete="current-password" required value={token} onChange={(e) => setToken(e.target.value)} />
          <span id="token-hint" className="hint">
            {hint}
          </span>
        </div>
        <button type="submit" disabled={busy || token.trim() === ''}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      <ErrorNotice error={error} />
    </main>
  );
}
