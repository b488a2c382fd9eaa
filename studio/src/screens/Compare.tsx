import { useState, type FormEvent } from 'react';
import { DiffView } from '../components/DiffView';
import { Link } from '../components/Link';
import { ErrorNotice, Loading } from '../components/Notice';
import { ScopeFields } from '../components/ScopeFields';
import type { JsonObject } from '../lib/api';
import { ApiProblem } from '../lib/problem';
import { href } from '../lib/routes';
import { describeScope, parseScope, scopeProblems, scopeQuery, type Scope } from '../lib/scope';
import { useAsync } from '../lib/useAsync';
import { navigate } from '../navigation';
import { useSession } from '../session';

/** What a comparison reads: what each context resolves to, or what each scope's own layer sets. */
type What = 'resolved' | 'layers';

/** One side of a comparison: its values and where they stand. */
interface Side {
  values: JsonObject;
  where: string;
}

/**
 * Two contexts' resolved documents side by side (two environments, tenants,
 * editions…), or two scopes' own layers (what each sets, before resolution).
 */
export default function Compare({ ns, search }: { ns: string; search: string }) {
  const { api, me } = useSession();
  const params = new URLSearchParams(search);
  const what: What = params.get('what') === 'layers' ? 'layers' : 'resolved';
  const [draftWhat, setDraftWhat] = useState<What>(what);
  const side = async (scope: Scope): Promise<Side> => {
    if (what === 'resolved') {
      const resolved = await api.resolved(ns, scope);
      return { values: resolved.values, where: `position ${resolved.position}` };
    }
    try {
      const layer = await api.layer(ns, scope);
      return { values: layer.values, where: `revision ${layer.revision}` };
    } catch (error) {
      // A scope without a layer sets nothing: an empty side, said in words.
      if (error instanceof ApiProblem && error.status === 404 && error.code === 'layer-not-found') return { values: {}, where: 'no layer' };
      throw error;
    }
  };
  const left = parseScope(params.get('left') ?? '');
  const right = parseScope(params.get('right') ?? '');
  const fixed: Scope = me.role.tenant ? { tenant: me.role.tenant } : {};
  const [draftLeft, setDraftLeft] = useState<Scope>({ ...left, ...fixed });
  const [draftRight, setDraftRight] = useState<Scope>({ ...right, ...fixed });
  const chosen = params.has('left') && params.has('right');
  const both = useAsync(
    () => (chosen ? Promise.all([side(left), side(right)]) : Promise.resolve(null)),
    `compare:${ns}:${search}`,
  );
  const invalid = Object.keys(scopeProblems(draftLeft)).length + Object.keys(scopeProblems(draftRight)).length > 0;
  const compare = (event: FormEvent) => {
    event.preventDefault();
    const query = new URLSearchParams({ left: scopeQuery({ ...draftLeft, ...fixed }), right: scopeQuery({ ...draftRight, ...fixed }) });
    if (draftWhat === 'layers') query.set('what', 'layers');
    navigate(href({ screen: 'compare', ns, search: query.toString() }));
  };
  return (
    <>
      <p className="crumbs">
        <Link href={href({ screen: 'namespace', ns })}>Namespace {ns}</Link>
      </p>
      <h1>Compare two contexts of {ns}</h1>
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
          <legend>Right context</legend>
          <ScopeFields idPrefix="right" scope={draftRight} fixed={fixed} onChange={setDraftRight} />
        </fieldset>
        <p className="actions">
          <button type="submit" disabled={invalid}>
            Compare
          </button>
        </p>
      </form>
      <ErrorNotice error={both.error} />
      {chosen && both.loading && !both.data && <Loading what={what === 'layers' ? 'both layers' : 'both resolved documents'} />}
      {both.data && (
        <section aria-labelledby="compare-heading">
          <h2 id="compare-heading">
            {what === 'layers' ? 'Layer ' : ''}
            {describeScope(left)} ({both.data[0].where}) compared with {what === 'layers' ? 'layer ' : ''}
            {describeScope(right)} ({both.data[1].where})
          </h2>
          <DiffView before={both.data[0].values} after={both.data[1].values} beforeLabel={describeScope(left)} afterLabel={describeScope(right)} />
        </section>
      )}
    </>
  );
}
