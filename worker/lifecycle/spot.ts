// Spot interruption notices from the EC2 instance metadata service (IMDSv2).
// Every few seconds: a session token (PUT /latest/api/token, reused until
// near its expiry), then GET
//   /latest/meta-data/spot/instance-action           404 = none; 200 {"action":"terminate","time":"…Z"}
//   /latest/meta-data/events/recommendations/rebalance  404 = none; 200 {"noticeTime":"…Z"}
// Each kind of notice is reported once. Errors are logged and polling goes on:
// a metadata service that does not answer must never stop a render.
import type { Logger } from '../../engine/log.js';

export type SpotNotice =
  | { kind: 'interruption'; action: string; /** ms epoch the instance goes away */ time: number }
  | { kind: 'rebalance'; /** ms epoch */ noticeTime: number };

const TOKEN_TTL_S = 21_600;

export interface SpotWatch {
  /** One poll now (tests, and the first poll at start). */
  poll(): Promise<void>;
  stop(): void;
}

export function startSpotWatch(opts: {
  endpoint: string;
  intervalMs: number;
  log: Logger;
  onNotice: (notice: SpotNotice) => void;
  /** Per request; IMDS answers in milliseconds on the instance. */
  timeoutMs?: number;
}): SpotWatch {
  const base = opts.endpoint.replace(/\/+$/, '');
  const timeoutMs = opts.timeoutMs ?? 2_000;
  let token: { value: string; expires: number } | undefined;
  let seenInterruption = false;
  let seenRebalance = false;
  let inFlight: Promise<void> | undefined;
  let failing = false;

  const getToken = async (): Promise<string> => {
    if (token && token.expires > Date.now()) return token.value;
    const res = await fetch(`${base}/latest/api/token`, {
      method: 'PUT',
      headers: { 'x-aws-ec2-metadata-token-ttl-seconds': String(TOKEN_TTL_S) },
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) throw new Error(`IMDS token: HTTP ${res.status}`);
    const value = (await res.text()).trim();
    token = { value, expires: Date.now() + (TOKEN_TTL_S - 60) * 1000 };
    return value;
  };

  /** The JSON body, or null on 404. A 401 (expired token) is retried once with a new token. */
  const get = async (path: string): Promise<unknown> => {
    for (let attempt = 0; ; attempt++) {
      const res = await fetch(`${base}${path}`, {
        headers: { 'x-aws-ec2-metadata-token': await getToken() },
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (res.status === 404) {
        await res.body?.cancel();
        return null;
      }
      if (res.status === 401 && attempt === 0) {
        await res.body?.cancel();
        token = undefined;
        continue;
      }
      if (!res.ok) throw new Error(`IMDS ${path}: HTTP ${res.status}`);
      return JSON.parse(await res.text());
    }
  };

  const pollOnce = async () => {
    try {
      if (!seenInterruption) {
        const body = (await get('/latest/meta-data/spot/instance-action')) as { action?: unknown; time?: unknown } | null;
        if (body) {
          const time = Date.parse(String(body.time));
          if (!Number.isFinite(time)) throw new Error(`IMDS instance-action: no valid time in ${JSON.stringify(body)}`);
          seenInterruption = true;
          opts.onNotice({ kind: 'interruption', action: String(body.action ?? 'terminate'), time });
        }
      }
      if (!seenRebalance && !seenInterruption) {
        const body = (await get('/latest/meta-data/events/recommendations/rebalance')) as { noticeTime?: unknown } | null;
        if (body) {
          seenRebalance = true;
          const noticeTime = Date.parse(String(body.noticeTime));
          opts.onNotice({ kind: 'rebalance', noticeTime: Number.isFinite(noticeTime) ? noticeTime : Date.now() });
        }
      }
      if (failing) opts.log.info('instance metadata service answers again');
      failing = false;
    } catch (err) {
      if (!failing) opts.log.warn({ err: (err as Error).message, endpoint: base }, 'spot notice poll failed; retrying');
      failing = true;
    }
  };
  /** A poll already under way is joined, not doubled. */
  const poll = (): Promise<void> => (inFlight ??= pollOnce().finally(() => (inFlight = undefined)));

  void poll();
  const timer = setInterval(() => void poll(), opts.intervalMs);
  timer.unref();
  return { poll, stop: () => clearInterval(timer) };
}
