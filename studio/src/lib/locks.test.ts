import { describe, expect, it } from 'vitest';
import { lockPointerProblem, lockUiSchema } from './locks';

describe('locked values in the form', () => {
  it('marks each locked pointer read-only with its reason, keeping the base uiSchema', () => {
    const ui = lockUiSchema(
      [
        { pointer: '/limit', reason: 'set by the global layer' },
        { pointer: '/payment/provider', reason: 'set by env=prod' },
      ],
      { 'ui:submitButtonOptions': { norender: true }, payment: { 'ui:order': ['provider', '*'] } },
    );
    expect(ui).toEqual({
      'ui:submitButtonOptions': { norender: true },
      limit: { 'ui:readonly': true, 'ui:help': 'Locked: set by the global layer', 'ui:classNames': 'locked' },
      payment: {
        'ui:order': ['provider', '*'],
        provider: { 'ui:readonly': true, 'ui:help': 'Locked: set by env=prod', 'ui:classNames': 'locked' },
      },
    });
  });
});

describe("a layer's own locks", () => {
  it('takes JSON pointers, the whole document included, and says why it refuses one', () => {
    expect(lockPointerProblem('/limit', [])).toBeNull();
    expect(lockPointerProblem('/a~1b/c~0d', [])).toBeNull();
    expect(lockPointerProblem('', [])).toBeNull();
    expect(lockPointerProblem('limit', [])).toMatch(/starts with "\/"/);
    expect(lockPointerProblem('/a~2', [])).toMatch(/~0/);
    expect(lockPointerProblem('/limit', ['/limit'])).toBe('this layer already locks it');
  });
});
