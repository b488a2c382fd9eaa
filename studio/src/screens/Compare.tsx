import { useState, type FormEvent } from 'react';
import { DiffView } from '../components/DiffView';
import { Link } from '../components/Link';
import { ErrorNotice, Loading } from '../components/Notice';
import { ScopeFields } from '../components/ScopeFields';
import { href } from '../lib/routes';
import { describeScope, parseScope, scopeProblems, scopeQuery, type Scope } from '../lib/scope';
import { useAsync } from '../lib/useAsync';
import { navigate } from '../navigation';
import { useSession } from '../session';

/** Two contexts' resolved documents side by side (two environments, tenants, editions…). */
export default function Compare({ ns, search }: { ns: string; search: string }) {
  const { api, me } = useSession();
  const params = new URLSearchParams(search);
  const left = parseScope(params.get('left') ?? '');
  const right = parseScope(params.get('right') ?? '');
  const fixed: Scope = me.role.tenant ? { tenant: me.role.tenant } : {};
  const [draftLeft, setDraftLeft] = useState<Scope>({ ...left, ...fixed });
  const [draftRight, setDraftRight] = useState<Scope>({ ...right, ...fixed });
  const chosen = params.has('left') && params.has('right');
  const both = useAsync(
    () => (chosen ? Promise.all([api.resolved(ns, left), api.resolved(ns, right)]) : Promise.resolve(null)),
    `compare:${ns}:${search}`,
  );
  const invalid = Object.keys(scopeProblems(draftLeft)).length + Object.keys(scopeProblems(draftRight)).length > 0;
  const compare = (event: FormEvent) => {
    event.preventDefault();
    const query = new URLSearchParams({ left: scopeQuery({ ...draftLeft, ...fixed }), right: scopeQuery({ ...draftRight, ...fixed }) });
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
      {chosen && both.loading && !both.data && <Loading what="both resolved documents" />}
      {both.data && (
        <section aria-labelledby="compare-heading">
          <h2 id="compare-heading">
            {describeScope(left)} (position {both.data[0].position}) compared with {describeScope(right)} (position {both.data[1].position})
          </h2>
          <DiffView before={both.data[0].values} after={both.data[1].values} beforeLabel={describeScope(left)} afterLabel={describeScope(right)} />
        </section>
      )}
    </>
  );
}
