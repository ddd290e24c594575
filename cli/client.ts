// The HTTP client every `vgen` client command uses: commands talk to the API,
// never to Redis or the database, so they work from any machine.
import type { RenderSpec } from '../engine/spec.js';
import type { VideoBody } from '../api/schemas.js';
import { readSse } from './sse.js';

const settled = (v: VideoBody) => v.status === 'succeeded' || v.status === 'failed' || v.status === 'canceled';
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly field?: string) {
    super(message);
  }
}

export class VgenClient {
  constructor(readonly baseUrl: string, private readonly token?: string) {}

  async request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: {
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
          ...headers,
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
    } catch (err) {
      throw new ApiError(0, 'unreachable', `cannot reach the vgen API at ${this.baseUrl} (${(err as Error).cause ?? err})`);
    }
    const data = (await res.json().catch(() => ({}))) as { error?: { code: string; message: string; field?: string } };
    if (!res.ok) throw new ApiError(res.status, data.error?.code ?? 'http_error', data.error?.message ?? `HTTP ${res.status}`, data.error?.field);
    return data as T;
  }

  submit(spec: RenderSpec, opts: { idempotencyKey?: string; visibility?: 'public' | 'private' } = {}) {
    const query = opts.visibility ? `?visibility=${opts.visibility}` : '';
    return this.request<VideoBody>('POST', `/v1/videos${query}`, spec, opts.idempotencyKey ? { 'idempotency-key': opts.idempotencyKey } : {});
  }

  video(id: string) {
    return this.request<VideoBody>('GET', `/v1/videos/${encodeURIComponent(id)}`);
  }

  cancel(id: string) {
    return this.request<VideoBody>('POST', `/v1/videos/${encodeURIComponent(id)}/cancel`);
  }

  /**
   * Follow a video through its event stream (GET /v1/videos/:id/events) until
   * it settles, reporting each state. A dropped stream is resumed with
   * Last-Event-ID; if the stream stays unavailable (503s, network errors), it
   * falls back to polling.
   */
  async follow(id: string, onUpdate?: (v: VideoBody) => void, opts: { retryMs?: number; signal?: AbortSignal } = {}): Promise<VideoBody> {
    const retryMs = opts.retryMs ?? 1_000;
    let lastEventId: string | undefined;
    let failures = 0;
    const retry = async (): Promise<boolean> => {
      if (++failures > 5) return false;
      await pause(retryMs);
      return true;
    };
    for (;;) {
      let res: Response;
      try {
        res = await fetch(`${this.baseUrl}/v1/videos/${encodeURIComponent(id)}/events`, {
          headers: {
            accept: 'text/event-stream',
            ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
            ...(lastEventId !== undefined ? { 'last-event-id': lastEventId } : {}),
          },
          signal: opts.signal,
        });
      } catch (err) {
        if (opts.signal?.aborted) throw err;
        if (await retry()) continue;
        return this.waitFor(id, onUpdate);
      }
      if (!res.ok) {
        const data = (await res.json().catch(() => ({}))) as { error?: { code: string; message: string; field?: string } };
        if (res.status >= 500 && (await retry())) continue;
        if (res.status >= 500) return this.waitFor(id, onUpdate);
        throw new ApiError(res.status, data.error?.code ?? 'http_error', data.error?.message ?? `HTTP ${res.status}`, data.error?.field);
      }
      try {
        for await (const event of readSse(res.body!)) {
          failures = 0;
          if (event.id !== undefined) lastEventId = event.id;
          const v = JSON.parse(event.data) as VideoBody;
          onUpdate?.(v);
          if (settled(v)) return v;
        }
      } catch (err) {
        if (opts.signal?.aborted) throw err;
      }
      // The stream ended before the video settled (an API restart, a proxy's timeout): resume.
      if (!(await retry())) return this.waitFor(id, onUpdate);
    }
  }

  /** Poll until the video settles, reporting each state seen. */
  async waitFor(id: string, onUpdate?: (v: VideoBody) => void, intervalMs = 500): Promise<VideoBody> {
    for (;;) {
      const v = await this.video(id);
      onUpdate?.(v);
      if (settled(v)) return v;
      await pause(intervalMs);
    }
  }
}
