// How Studio names a principal's role and the scope it is bound to.

import type { Role } from './api';

export function describeRole(role: Role): string {
  const bounds: string[] = [];
  if (role.tenant) bounds.push(`tenant ${role.tenant}`);
  if (role.namespaces) bounds.push(`namespaces ${role.namespaces.join(', ') || '(none)'}`);
  if (role.env) bounds.push(`env ${role.env}`);
  if (role.service) bounds.push(`service ${role.service}`);
  if (bounds.length === 0) bounds.push(role.role === 'admin' || role.role === 'auditor' ? 'every tenant and namespace' : 'unbound');
  return bounds.join(' · ');
}
