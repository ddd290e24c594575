// Shared by the operator commands: durations as people type them, and plain
// text tables as people read them (`--json` prints the API's answer instead).
import { VgenError } from '../../engine/errors.js';

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** `90`, `90s`, `15m`, `2h`, `7d`, `1w` → seconds. */
export function parseDuration(flag: string, raw: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([smhdw]?)$/i.exec(raw.trim());
  const seconds = m ? Math.round(Number(m[1]) * UNITS[(m[2] || 's').toLowerCase()]!) : NaN;
  if (!(seconds >= 1)) throw new VgenError('invalid_request', `--${flag} must be a duration like 90s, 15m, 2h or 7d, got "${raw}"`);
  return seconds;
}

/** 75 → "1m15s", 7200 → "2h". */
export function humanDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60) ? `${Math.floor((s % 3600) / 60)}m` : ''}`;
  return `${Math.floor(s / 86_400)}d${Math.floor((s % 86_400) / 3600) ? `${Math.floor((s % 86_400) / 3600)}h` : ''}`;
}

export const since = (iso: string, now = Date.now()) => humanDuration((now - Date.parse(iso)) / 1000);

/** Columns padded to their widest cell; the header in capitals. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header.map((h) => h.toUpperCase())), ...rows.map(line)].join('\n');
}
