import { useState } from 'react';
import { lockPointerProblem } from '../lib/locks';

/**
 * The locks a layer holds itself (values narrower layers may not override):
 * each can be removed, and a value added by its JSON pointer, with the
 * pointers of the layer's values and the schema's properties suggested. The
 * change is saved with the layer's values.
 */
export function OwnLocks({
  locks,
  saved,
  suggestions,
  writable,
  onChange,
}: {
  locks: readonly string[];
  saved: readonly string[];
  suggestions: readonly string[];
  writable: boolean;
  onChange: (locks: string[]) => void;
}) {
  const [pointer, setPointer] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  const add = () => {
    const candidate = pointer.trim();
    const why = lockPointerProblem(candidate, locks);
    setProblem(why);
    if (why) return;
    onChange([...locks, candidate].sort());
    setPointer('');
  };
  const unsaved = locks.length !== saved.length || locks.some((p) => !saved.includes(p));
  return (
    <section aria-labelledby="own-locks-heading" className="panel" data-testid="own-locks">
      <h2 id="own-locks-heading">Locks this layer holds</h2>
      <p className="hint">A locked value may not be overridden by a narrower layer (a service, tenant or edition below this scope).</p>
      {locks.length === 0 ? (
        <p>This layer locks nothing.</p>
      ) : (
        <ul className="lock-list">
          {locks.map((p) => (
            <li key={p}>
              <code>{p || '/ (the whole document)'}</code>
              {writable && (
                <>
                  {' '}
                  <button type="button" className="secondary" onClick={() => onChange(locks.filter((l) => l !== p))} aria-label={`Unlock ${p || 'the whole document'}`}>
                    Unlock
                  </button>
                </>
              )}
            </li>
          ))}
        </ul>
      )}
      {writable && (
        <div className="field">
          <label htmlFor="lock-pointer">Lock a value (JSON pointer)</label>
          <input
            id="lock-pointer"
            list="lock-suggestions"
            value={pointer}
            placeholder="/limit"
            autoComplete="off"
            aria-invalid={problem ? true : undefined}
            aria-describedby={problem ? 'lock-pointer-problem' : undefined}
            onChange={(e) => {
              setPointer(e.target.value);
              setProblem(null);
            }}
            onKeyDown={(e) => {
              if (e.key === 'Enter') {
                e.preventDefault();
                add();
              }
            }}
          />
          <datalist id="lock-suggestions">
            {suggestions
              .filter((s) => !locks.includes(s))
              .map((s) => (
                <option key={s} value={s} />
              ))}
          </datalist>
          <button type="button" className="secondary" onClick={add}>
            Add the lock
          </button>
          {problem && (
            <span className="field-problem" id="lock-pointer-problem" role="status">
              The pointer is not valid: {problem}.
            </span>
          )}
        </div>
      )}
      {unsaved && <p data-testid="locks-unsaved">The locks changed: save the layer to apply them.</p>}
    </section>
  );
}
