import { DIMENSIONS, scopeProblems, type Dimension, type Scope } from '../lib/scope';

const LABELS: Record<Dimension, string> = {
  env: 'Environment',
  service: 'Service',
  tenant: 'Tenant',
  edition: 'Edition',
};

/**
 * The four dimensions of a scope or context, each with its label. A
 * dimension the principal is bound to is shown fixed.
 */
export function ScopeFields({
  idPrefix,
  scope,
  onChange,
  fixed = {},
}: {
  idPrefix: string;
  scope: Scope;
  onChange: (scope: Scope) => void;
  fixed?: Scope;
}) {
  const problems = scopeProblems(scope);
  return (
    <div className="scope-fields">
      {DIMENSIONS.map((dimension) => {
        const id = `${idPrefix}-${dimension}`;
        const bound = fixed[dimension];
        return (
          <div className="field" key={dimension}>
            <label htmlFor={id}>{LABELS[dimension]}</label>
            <input
              id={id}
              name={dimension}
              value={bound ?? scope[dimension] ?? ''}
              readOnly={bound !== undefined}
              aria-readonly={bound !== undefined}
              aria-invalid={problems[dimension] ? true : undefined}
              aria-describedby={problems[dimension] ? `${id}-problem` : undefined}
              placeholder="any"
              autoComplete="off"
              onChange={(event) => {
                const next = { ...scope };
                const value = event.target.value.trim();
                if (value) next[dimension] = value;
                else delete next[dimension];
                onChange(next);
              }}
            />
            {problems[dimension] && (
              <span className="field-problem" id={`${id}-problem`}>
                {LABELS[dimension]} {problems[dimension]}
              </span>
            )}
          </div>
        );
      })}
    </div>
  );
}
