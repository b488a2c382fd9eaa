import { ErrorNotice, Loading } from '../components/Notice';
import { describeSeconds, sortInstances, statusLabel, type DriftInstance } from '../lib/drift';
import { useAsync } from '../lib/useAsync';
import { useSession } from '../session';

/**
 * Which SDK instances run which configuration: each reporting instance of
 * the services the role may see, current or behind the latest position of
 * what it follows (and since when), stale ones flagged.
 */
export default function Drift() {
  const { api } = useSession();
  const drift = useAsync(() => api.drift(), 'drift');
  const instances = sortInstances(drift.data?.instances ?? []);
  return (
    <>
      <h1>Drift</h1>
      <p className="hint">
        SDK clients report what they have applied every few seconds. An instance is <em>behind</em> when something it follows changed after
        the position it applied; <em>stale</em> when it has not reported for {drift.data?.stale_after_intervals ?? 3} of its intervals or said
        it stopped.
      </p>
      <p>
        <button type="button" className="secondary" onClick={drift.reload}>
          Refresh
        </button>
      </p>
      <ErrorNotice error={drift.error} />
      {drift.loading && !drift.data && <Loading what="the SDK instances" />}
      {drift.data && (
        <table className="drift">
          <caption>
            {instances.length === 0
              ? 'No SDK instance has reported yet.'
              : `${drift.data.behind} behind, ${drift.data.current} current, ${drift.data.stale} stale`}
          </caption>
          <thead>
            <tr>
              <th scope="col">Instance</th>
              <th scope="col">Service</th>
              <th scope="col">Status</th>
              <th scope="col">Follows</th>
              <th scope="col">Last seen</th>
              <th scope="col">SDK</th>
            </tr>
          </thead>
          <tbody>
            {instances.map((i) => (
              <InstanceRow key={`${i.env}/${i.service}/${i.instance}`} instance={i} />
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

function InstanceRow({ instance: i }: { instance: DriftInstance }) {
  return (
    <tr data-instance={i.instance} data-status={i.stale ? 'stale' : i.status}>
      <th scope="row">
        <code>{i.instance}</code>
      </th>
      <td>
        {i.service} <span className="scope">({i.env})</span>
      </td>
      <td>
        <span className={`drift-status ${i.stale ? 'stale' : i.status}`}>{statusLabel(i)}</span>
        {i.behind_secs !== null && <span className="scope"> for {describeSeconds(i.behind_secs)}</span>}
      </td>
      <td>
        <ul className="followed">
          {i.followed.map((f) => (
            <li key={f.namespace}>
              <code>{f.namespace}</code>
              {f.tenants && f.tenants.length > 0 && <span className="scope"> (tenants {f.tenants.join(', ')})</span>}: at {f.applied_position}
              {f.behind ? ` of ${f.latest_position}` : ''}
            </li>
          ))}
        </ul>
      </td>
      <td>
        <time dateTime={i.last_seen}>{new Date(i.last_seen).toLocaleString()}</time>
        <span className="scope"> ({describeSeconds(i.silent_secs)} ago)</span>
      </td>
      <td>
        {i.sdk_version} <span className="scope">via {i.via}</span>
      </td>
    </tr>
  );
}
