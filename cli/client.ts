// The HTTP client every `vgen` client command uses: commands talk to the API,
// never to Redis or the database, so they work from any machine.
import type { RenderSpec } from '../engine/spec.js';
import type { VideoBody } from '../api/schemas.js';

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

  /** Poll until the video settles, reporting each state seen. */
  async waitFor(id: string, onUpdate?: (v: VideoBody) => void, intervalMs = 500): Promise<VideoBody> {
    for (;;) {
      const v = await this.video(id);
      onUpdate?.(v);
      if (v.status === 'succeeded' || v.status === 'failed' || v.status === 'canceled') return v;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}
