// The signed-in principal: its token (kept for this browser tab only), the
// API client carrying it and what the server says it is and may do.

import { createContext, useContext } from 'react';
import type { ApiClient, WhoAmI } from './lib/api';

export interface Session {
  api: ApiClient;
  me: WhoAmI;
  signOut: () => void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('no session');
  return session;
}

const KEY = 'ecs-studio-token';

export const tokenStore = {
  load: (): string | null => window.sessionStorage.getItem(KEY),
  save: (token: string) => window.sessionStorage.setItem(KEY, token),
  clear: () => window.sessionStorage.removeItem(KEY),
};
