import { readBy } from '../lib/drift';
import { useAsync } from '../lib/useAsync';
import { useSession } from '../session';

const WINDOW = '7d';

/**
 * The impact of a change: which services read the keys it touches, as SDK
 * clients reported in the last 7 days (GET /v1/usage). Shows nothing when
 * usage cannot be read.
 */
export function ReadBy({ ns, pointers }: { ns: string; pointers: string[] }) {
  const { api } = useSession();
  const usage = useAsync(() => api.usage(ns, WINDOW), `usage:${ns}`);
  if (!usage.data || pointers.length === 0) return null;
  const services = readBy(usage.data, pointers);
  return (
    <p className="read-by" data-testid="read-by">
      {services.length === 0 ? 'Read by no reporting service in the last 7 days.' : `Read by: ${services.join(', ')} (last 7 days)`}
    </p>
  );
}
