import { useState, type FormEvent } from 'react';
import { DiffView } from '../components/DiffView';
import { ReadBy } from '../components/ReadBy';
import { diffValues } from '../lib/diff';
import { Link } from '../components/Link';
import { ErrorNotice, Loading } from '../components/Notice';
import { PointInTimeFields } from '../components/PointInTimeFields';
import { ScopeFields } from '../components/ScopeFields';
import type { JsonObject } from '../lib/api';
import { describeSide, inputsFromPoint, parseSide, pointInputParams, type CompareSide } from '../lib/compareSide';
import { ApiProblem } from '../lib/problem';
import { href } from '../lib/routes';
import { scopeParams, scopeProblems, type Scope } from '../lib/scope';
import { useAsync } from '../lib/useAsync';
import { navigate } from '../navigation';
import { useSession } from '../session';

/** What a comparison reads: what each context resolves to, or what each scope's own layer sets. */
type What = 'resolved' | 'layers';

/** One side of a comparison as read: its values and where they stand. */
interface SideValues {
  values: JsonObject;
  where: string;
}

/**
 * Two contexts' resolved documents side by side (two environments, tenants,
 * editions…), or two scopes' own layers (what each sets, before resolution);
 * each side read now or at its own point in time, so one context can be
 * compared with itself as it was.
 */
export default function Compare({ ns, search }: { ns: string; search: string }) {
  const { api, me } = useSession();
  const params = new URLSearchParams(search);
  const what: What = params.get('what') === 'layers' ? 'layers' : 'resolved';
  const [draftWhat, setDraftWhat] = useState<What>(what);
  const read = async ({ scope, point }: CompareSide): Promise<SideValues> => {
    if (what === 'resolved') {
      const resolved = await api.resolved(ns, scope, { point });
      return { values: resolved.values, where: `position ${resolved.position}` };
    }
    try {
      const layer = await api.layer(ns, scope, point);
      return { values: layer.values, where: `revision ${layer.revision}` };
    } catch (error) {
      // A scope without a layer sets nothing: an empty side, said in words.
      if (error instanceof ApiProblem && error.status === 404 && error.code === 'layer-not-found') return { values: {}, where: 'no layer' };
      throw error;
    }
  };
  const { side: left, error: leftError } = parseSide(params.get('left') ?? '');
  const { side: right, error: rightError } = parseSide(params.get('right') ?? '');
  const pointError = leftError ? `left: ${leftError}` : rightError ? `right: ${rightError}` : null;
  const fixed: Scope = me.role.tenant ? { tenant: me.role.tenant } : {};
  const [draftLeft, setDraftLeft] = useState<Scope>({ ...left.scope, ...fixed });
  const [draftRight, setDraftRight] = useState<Scope>({ ...right.scope, ...fixed });
  const [leftInputs, setLeftInputs] = useState(() => inputsFromPoint(left.point));
  const [rightInputs, setRightInputs] = useState(() => inputsFromPoint(right.point));
  const chosen = params.has('left') && params.has('right') && pointError === null;
  const both = useAsync(
    () => (chosen ? Promise.all([read(left), read(right)]) : Promise.resolve(null)),
    `compare:${ns}:${search}`,
  );
  const invalid = Object.keys(scopeProblems(draftLeft)).length + Object.keys(scopeProblems(draftRight)).length > 0;
  const sideParam = (scope: Scope, inputs: { position: string; at: string }) => {
    const query = scopeParams({ ...scope, ...fixed });
    for (const [key, value] of pointInputParams(inputs.position, inputs.at)) query.set(key, value);
    return query.toString();
  };
  const compare = (event: FormEvent) => {
    event.preventDefault();
    const query = new URLSearchParams({ left: sideParam(draftLeft, leftInputs), right: sideParam(draftRight, rightInputs) });
    if (draftWhat === 'layers') query.set('what', 'layers');
    navigate(href({ screen: 'compare', ns, search: query.toString() }));
  };
  return (
    <>
      <p className="crumbs">
        <Link href={href({ screen: 'namespace', ns })}>Namespace {ns}</Link>
      </p>
      <h1>Compare two contexts of {ns}</h1>
      <p className="hint">Two environments, tenants or editions, or one context at two points in time: give each side a context and, for the past, a position or a time.</p>
      <form className="panel" onSubmit={compare} aria-label="Contexts to compare">
        <fieldset>
          <legend>Compare</legend>
          <label>
            <input type="radio" name="compare-what" value="resolved" checked={draftWhat === 'resolved'} onChange={() => setDraftWhat('resolved')} /> the
            resolved documents (what a service in each context reads)
          </label>
          <label>
            <input type="radio" name="compare-what" value="layers" checked={draftWhat === 'layers'} onChange={() => setDraftWhat('layers')} /> the
            layers themselves (what each scope sets)
          </label>
        </fieldset>
        <fieldset>
          <legend>Left context</legend>
          <ScopeFields idPrefix="left" scope={draftLeft} fixed={fixed} onChange={setDraftLeft} />
        </fieldset>
        <fieldset>
          <legend>Left point in time (empty: now)</legend>
          <PointInTimeFields idPrefix="left-pit" position={leftInputs.position} at={leftInputs.at} onChange={setLeftInputs} />
        </fieldset>
        <fieldset>
          <legend>Right context</legend>
          <ScopeFields idPrefix="right" scope={draftRight} fixed={fixed} onChange={setDraftRight} />
        </fieldset>
        <fieldset>
          <legend>Right point in time (empty: now)</legend>
          <PointInTimeFields idPrefix="right-pit" position={rightInputs.position} at={rightInputs.at} onChange={setRightInputs} />
        </fieldset>
        <p className="actions">
          <button type="submit" disabled={invalid}>
            Compare
          </button>
        </p>
      </form>
      {pointError && (
        <p className="notice error" role="alert">
          The point in time is not valid ({pointError}).
        </p>
      )}
      <ErrorNotice error={both.error} />
      {chosen && both.loading && !both.data && <Loading what={what === 'layers' ? 'both layers' : 'both resolved documents'} />}
      {both.data && (
        <section aria-labelledby="compare-heading">
          <h2 id="compare-heading">
            {what === 'layers' ? 'Layer ' : ''}
            {describeSide(left)} ({both.data[0].where}) compared with {what === 'layers' ? 'layer ' : ''}
            {describeSide(right)} ({both.data[1].where})
          </h2>
          <DiffView before={both.data[0].values} after={both.data[1].values} beforeLabel={describeSide(left)} afterLabel={describeSide(right)} />
          <ReadBy ns={ns} pointers={diffValues(both.data[0].values, both.data[1].values).map((c) => c.pointer)} />
        </section>
      )}
    </>
  );
}
