import { sideBySide, diffValues } from '../lib/diff';

/** Two documents side by side, changed lines highlighted, with a summary of the changed values. */
export function DiffView({ before, after, beforeLabel, afterLabel }: { before: unknown; after: unknown; beforeLabel: string; afterLabel: string }) {
  const rows = sideBySide(before, after);
  const changes = diffValues(before, after);
  return (
    <div className="diff">
      <p className="diff-summary">
        {changes.length === 0
          ? 'No differences.'
          : `${changes.length} ${changes.length === 1 ? 'value differs' : 'values differ'}: ${changes.map((c) => `${c.pointer || '/'} ${c.kind}`).join('; ')}`}
      </p>
      <table className="diff-table">
        <caption className="visually-hidden">
          {beforeLabel} compared with {afterLabel}
        </caption>
        <thead>
          <tr>
            <th scope="col" colSpan={2}>
              {beforeLabel}
            </th>
            <th scope="col" colSpan={2}>
              {afterLabel}
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row, i) => (
            <tr key={i}>
              <td className="line-number">{row.left?.number ?? ''}</td>
              <td className={`line ${row.left?.kind ?? 'empty'}`}>
                {row.left?.kind === 'removed' && <span className="visually-hidden">removed: </span>}
                <code>{row.left?.text ?? ''}</code>
              </td>
              <td className="line-number">{row.right?.number ?? ''}</td>
              <td className={`line ${row.right?.kind ?? 'empty'}`}>
                {row.right?.kind === 'added' && <span className="visually-hidden">added: </span>}
                <code>{row.right?.text ?? ''}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
