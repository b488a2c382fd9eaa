import { useCallback, useEffect, useState } from 'react';

interface Settled<T> {
  key: string;
  generation: number;
  data?: T;
  error?: unknown;
}

/** Loads data for a screen, again whenever `key` changes; `reload` fetches it anew. */
export function useAsync<T>(load: () => Promise<T>, key: string) {
  const [settled, setSettled] = useState<Settled<T> | null>(null);
  const [generation, setGeneration] = useState(0);
  useEffect(() => {
    let live = true;
    load().then(
      (data) => live && setSettled({ key, generation, data }),
      (error: unknown) => live && setSettled({ key, generation, error }),
    );
    return () => {
      live = false;
    };
    // `load` is recreated on every render; `key` names what it loads.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, generation]);
  const reload = useCallback(() => setGeneration((g) => g + 1), []);
  const sameKey = settled?.key === key;
  const current = sameKey && settled.generation === generation;
  return {
    // While reloading the same thing, the previous data stays on screen.
    data: sameKey ? settled.data : undefined,
    error: current ? settled.error : undefined,
    loading: !current,
    reload,
  };
}
