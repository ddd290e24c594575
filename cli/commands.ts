// Client commands: submit, status and cancel. Each parses its arguments and calls the
// HTTP client; the same calls are what tests and other programs use.
import { readFileSync } from 'node:fs';
import type { VideoBody } from '../api/schemas.js';
import { VgenError } from '../engine/errors.js';
import { parseSpec } from '../engine/spec.js';
import { VgenClient } from './client.js';
import { progressBar } from './progress.js';

export interface ClientFlags {
  api: string;
  token?: string;
  json?: boolean;
}

export function client(flags: ClientFlags): VgenClient {
  if (!flags.token) throw new VgenError('unauthorized', 'no token: pass --token, set VGEN_TOKEN, or run `vgen up` (it writes <data-dir>/token)');
  return new VgenClient(flags.api, flags.token);
}

export function describe(v: VideoBody): string {
  if (v.status === 'succeeded' && v.output) return `${v.id} succeeded: ${v.output.url} (${(v.output.durationMs / 1000).toFixed(2)} s, ${v.output.width}x${v.output.height})`;
  if (v.status === 'failed' && v.error) return `${v.id} failed: ${v.error.message} [${v.error.code}]`;
  return `${v.id} ${v.status} ${Math.round(v.progress * 100)}%`;
}

/** Read a spec file and check it with the same schema the API uses, before sending it. */
export function readSpec(path: string) {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new VgenError('invalid_json', `${path}: ${(err as Error).message}`);
  }
  return parseSpec(raw);
}

export async function submit(path: string, flags: ClientFlags & { wait?: boolean; private?: boolean; idempotencyKey?: string }): Promise<VideoBody> {
  const api = client(flags);
  const spec = readSpec(path);
  let video = await api.submit(spec, { idempotencyKey: flags.idempotencyKey, visibility: flags.private ? 'private' : undefined });
  if (flags.wait) {
    const bar = flags.json ? progressBar({ isTTY: false } as NodeJS.WriteStream) : progressBar();
    video = await api.follow(video.id, bar.update);
    bar.done();
  }
  return video;
}

export async function status(id: string, flags: ClientFlags): Promise<VideoBody> {
  return client(flags).video(id);
}

/** POST /v1/videos/:id/cancel: a settled video is a 409 conflict. */
export async function cancel(id: string, flags: ClientFlags): Promise<VideoBody> {
  return client(flags).cancel(id);
}
