import { describe, expect, it } from 'vitest';
import { ApiProblem, describeProblem, problemFrom, violationsToErrorSchema } from './problem';

describe('problems from the API', () => {
  it('reads an RFC 9457 body with its code and violations', () => {
    const problem = problemFrom(
      422,
      JSON.stringify({
        type: 'urn:ecs:problem:schema-violation',
        title: 'Unprocessable Content',
        status: 422,
        code: 'schema-violation',
        detail: 'the values fail the schema',
        violations: [{ pointer: '/limit', message: '500 is greater than the maximum of 100' }],
      }),
    );
    expect(problem.status).toBe(422);
    expect(problem.code).toBe('schema-violation');
    expect(problem.violations).toHaveLength(1);
    expect(describeProblem(problem)).toMatch(/^The values do not satisfy the namespace's schema; nothing was saved\. The values fail the schema\.$/);
  });

  it('survives a body that is not JSON', () => {
    const problem = problemFrom(502, '<html>bad gateway</html>');
    expect(problem.code).toBe('http-502');
    expect(describeProblem(problem)).toMatch(/server failed/);
  });

  it('reports a stale edit as a conflict, in words', () => {
    const problem = new ApiProblem(412, { code: 'stale-revision', detail: 'expected revision 1, the layer is at 2' });
    expect(problem.isConflict).toBe(true);
    expect(describeProblem(problem)).toMatch(/Someone changed this since you opened it.*Expected revision 1, the layer is at 2\.$/);
  });

  it('names unreachable servers and refused tokens plainly', () => {
    expect(describeProblem(new TypeError('Failed to fetch'))).toMatch(/could not be reached/);
    expect(describeProblem(new ApiProblem(401, { detail: 'unknown credential' }))).toMatch(/token was not accepted/);
  });

  it('puts each violation on the field its JSON pointer names', () => {
    expect(
      violationsToErrorSchema([
        { pointer: '/limit', message: 'too big' },
        { pointer: '/limits/0/max', message: 'not an integer' },
        { pointer: '/a~1b', message: 'escaped' },
        { pointer: '', message: 'root' },
        { pointer: '/limit', locked_pointer: '/limit', locked_by: { env: 'prod' } },
      ]),
    ).toEqual({
      __errors: ['root'],
      limit: { __errors: ['too big', 'locked by the env=prod layer (/limit)'] },
      limits: { 0: { max: { __errors: ['not an integer'] } } },
      'a/b': { __errors: ['escaped'] },
    });
  });
});
