// One canonical text for a JSON value, so two equal values hash the same
// whatever their key order: Idempotency-Key request hashes (api/idempotency.ts)
// and render-cache keys (engine/render-cache.ts) both depend on it.

/** JSON with every object's keys sorted, recursively: equal values give equal text, whatever the key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const entries = Object.keys(obj).sort().filter((k) => obj[k] !== undefined);
    return `{${entries.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
