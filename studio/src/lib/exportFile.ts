// Naming and saving a file the browser downloads: the API needs a bearer
// header, so an export is fetched by the app and handed to the browser as a
// blob rather than opened as a plain link.

/** The file name of an audit export: the filters it applied and when it was taken. */
export function auditExportName(filters: Record<string, string>, now: Date): string {
  const parts = Object.entries(filters)
    .filter(([, value]) => value.trim())
    .map(([key, value]) => `${key}-${value.trim()}`);
  const stamp = now.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '');
  const name = ['audit', ...parts, stamp].join('_');
  // File systems disagree on many characters; keep the ones every one accepts.
  return `${name.replace(/[^A-Za-z0-9._-]+/g, '-')}.jsonl`;
}

/** Hands `blob` to the browser as a download named `name`. */
export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  // The download has started from the URL; releasing it later frees the memory.
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
