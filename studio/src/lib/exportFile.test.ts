import { describe, expect, it } from 'vitest';
import { auditExportName } from './exportFile';

describe('the audit export file name', () => {
  const now = new Date('2026-12-02T03:04:05.678Z');

  it('names the time it was taken', () => {
    expect(auditExportName({}, now)).toBe('audit_2026-12-02T030405Z.jsonl');
  });

  it('names the filters that are set, in order, and skips empty ones', () => {
    expect(auditExportName({ tenant: 'acme', namespace: '', outcome: 'refused' }, now)).toBe(
      'audit_tenant-acme_outcome-refused_2026-12-02T030405Z.jsonl',
    );
  });

  it('keeps only characters every file system accepts', () => {
    expect(auditExportName({ actor: 'key:ab/cd ef' }, now)).toBe('audit_actor-key-ab-cd-ef_2026-12-02T030405Z.jsonl');
  });
});
