import { randomBytes } from 'node:crypto';

/**
 * `vid_0mwwdhgm18c0d7ea886f7fca7` — a prefix that says what the id names, then
 * the creation time in fixed-width base 36 (so ids sort by age, which makes
 * cursor pagination a plain `id <` comparison) and 64 random bits.
 */
export function newId(prefix: 'usr' | 'vid' | 'key' | 'whd' | 'upl'): string {
  return `${prefix}_${Date.now().toString(36).padStart(9, '0')}${randomBytes(8).toString('hex')}`;
}
