// Where client commands find the API and their token.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export function dataDir(flag?: string): string {
  return resolve(flag ?? process.env.DATA_DIR ?? '.vgen');
}

export function apiUrl(flag?: string): string {
  return (flag ?? process.env.VGEN_API ?? 'http://127.0.0.1:3000').replace(/\/+$/, '');
}

/** --token, else VGEN_TOKEN, else the token `vgen up` wrote to <data-dir>/token. */
export function apiToken(flag?: string, dir?: string): string | undefined {
  if (flag) return flag;
  if (process.env.VGEN_TOKEN) return process.env.VGEN_TOKEN;
  const file = join(dataDir(dir), 'token');
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}

/** The flags every client command takes, for parseArgs. */
export const clientOptions = {
  api: { type: 'string' },
  token: { type: 'string' },
  'data-dir': { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** Where to reach the API, and as whom, from the parsed client flags. */
export function clientFlags(values: { api?: string; token?: string; 'data-dir'?: string; json?: boolean }) {
  return { api: apiUrl(values.api), token: apiToken(values.token, values['data-dir']), json: values.json };
}
