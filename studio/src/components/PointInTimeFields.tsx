/**
 * A point-in-time picker: a position or a date and time (the time is disabled
 * while a position is given); both empty means now.
 */
export function PointInTimeFields({
  idPrefix,
  position,
  at,
  onChange,
}: {
  idPrefix: string;
  position: string;
  at: string;
  onChange: (inputs: { position: string; at: string }) => void;
}) {
  return (
    <div className="scope-fields">
      <div className="field">
        <label htmlFor={`${idPrefix}-position`}>As of position</label>
        <input
          id={`${idPrefix}-position`}
          inputMode="numeric"
          pattern="[0-9]*"
          autoComplete="off"
          value={position}
          onChange={(e) => onChange({ position: e.target.value, at })}
        />
      </div>
      <div className="field">
        <label htmlFor={`${idPrefix}-at`}>As of time</label>
        <input
          id={`${idPrefix}-at`}
          type="datetime-local"
          step="1"
          value={at}
          disabled={position.trim() !== ''}
          onChange={(e) => onChange({ position, at: e.target.value })}
        />
      </div>
    </div>
  );
}
