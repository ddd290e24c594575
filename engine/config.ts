// Configuration comes from environment variables only, validated once at start.
// A wrong or missing value stops the process with one line naming the variable.
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { parseOutboundAllow, type OutboundPolicy } from './outbound-policy.js';

export class ConfigError extends Error {
  constructor(readonly variable: string, reason: string) {
    super(`${variable} ${reason}`);
    this.name = 'ConfigError';
  }
}

export type Env = Record<string, string | undefined>;

/**
 * Largest image a worker decodes: 40 MP (a 48 MP phone photo must be resized)
 * and 8,192 px a side. Decoding a 40 MP PNG takes ffmpeg ~220 MiB (docs/operations.md).
 */
export const ASSET_LIMIT_DEFAULTS = { maxPixels: 40_000_000, maxSide: 8192, maxSeconds: 600 } as const;

export function read(env: Env, name: string): string | undefined {
  const v = env[name]?.trim();
  return v === '' ? undefined : v;
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  if (!/^-?\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

export function url(env: Env, name: string, protocols: string[], fallback?: string): string | undefined {
  const raw = read(env, name) ?? fallback;
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, `must be a URL, got "${raw}"`);
  }
  if (!protocols.includes(parsed.protocol)) throw new ConfigError(name, `must start with ${protocols.join(' or ')}, got "${raw}"`);
  return raw;
}

function oneOf<T extends string>(env: Env, name: string, choices: readonly T[], fallback: T): T {
  const raw = read(env, name) ?? fallback;
  if (!choices.includes(raw as T)) throw new ConfigError(name, `must be one of ${choices.join(', ')}, got "${raw}"`);
  return raw as T;
}

export function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  if (/^(1|true|yes)$/i.test(raw)) return true;
  if (/^(0|false|no)$/i.test(raw)) return false;
  throw new ConfigError(name, `must be true or false, got "${raw}"`);
}

const trimSlash = (s: string) => s.replace(/\/+$/, '');

export function loadConfig(env: Env = process.env) {
  const dataDir = resolve(read(env, 'DATA_DIR') ?? '.vgen');
  const port = int(env, 'PORT', 3000, 0, 65535);
  const s3Bucket = read(env, 'S3_BUCKET');
  const storageDriver = oneOf(env, 'STORAGE', ['fs', 's3'] as const, s3Bucket ? 's3' : 'fs');
  if (storageDriver === 's3' && !s3Bucket) throw new ConfigError('S3_BUCKET', 'is required when STORAGE=s3');
  const cdnBaseUrl = url(env, 'CDN_BASE_URL', ['https:', 'http:']);
  if (storageDriver === 's3' && !cdnBaseUrl) throw new ConfigError('CDN_BASE_URL', 'is required when STORAGE=s3 (public URLs are CDN_BASE_URL + key)');
  const jwtSecret = read(env, 'JWT_SECRET');
  if (jwtSecret !== undefined && jwtSecret.length < 32) throw new ConfigError('JWT_SECRET', 'must be at least 32 characters');
  const trustProxy = read(env, 'TRUST_PROXY');
  if (trustProxy !== undefined && /^(true|yes|1)$/i.test(trustProxy))
    throw new ConfigError('TRUST_PROXY', 'must be the proxy\'s address or CIDR range (e.g. 10.0.0.0/8), not "true": any client could then forge its IP');
  const logLevel = oneOf(env, 'LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info');
  const renderTimeoutSeconds = int(env, 'RENDER_TIMEOUT_SECONDS', 900, 10, 86_400);

  return {
    redisUrl: url(env, 'REDIS_URL', ['redis:', 'rediss:'], 'redis://127.0.0.1:6379')!,
    queueName: oneOfPattern(env, 'QUEUE_NAME', /^[a-z][a-z0-9-]{0,63}$/, 'render'),
    databaseUrl: url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']),
    dataDir,
    host: read(env, 'HOST') ?? '127.0.0.1',
    port,
    /** The host Prometheus reaches this process's /metrics at, as listed by GET /v1/ops/prometheus-targets. */
    metricsAdvertiseHost: advertiseHost(env),
    publicUrl: trimSlash(url(env, 'PUBLIC_URL', ['http:', 'https:'], `http://127.0.0.1:${port}`)!),
    publicUrlSet: read(env, 'PUBLIC_URL') !== undefined,
    jwtSecret,
    renderAttempts: int(env, 'RENDER_ATTEMPTS', 3, 1, 10),
    /** Render cache (engine/render-cache.ts): workers look renders up, the settler records them. `off` on either side stops that side. */
    renderCache: oneOf(env, 'RENDER_CACHE', ['on', 'off'] as const, 'on') === 'on',
    accessTokenTtlSeconds: int(env, 'ACCESS_TOKEN_TTL_SECONDS', 900, 60, 86_400),
    refreshTokenTtlSeconds: int(env, 'REFRESH_TOKEN_TTL_SECONDS', 30 * 86_400, 3600, 365 * 86_400),
    /** Attempts on POST /v1/auth/register and /login per window, counted per client address and per email, shared through Redis. */
    authRateLimit: {
      windowSeconds: int(env, 'AUTH_RATE_LIMIT_WINDOW_SECONDS', 60, 1, 86_400),
      perIp: int(env, 'AUTH_RATE_LIMIT_PER_IP', 60, 1, 1_000_000),
      perAccount: int(env, 'AUTH_RATE_LIMIT_PER_ACCOUNT', 10, 1, 1_000_000),
      /** POST /v1/auth/refresh per client address, in the same window. */
      refreshPerIp: int(env, 'AUTH_REFRESH_RATE_LIMIT_PER_IP', 120, 1, 1_000_000),
    },
    /** Deadline for receiving a whole request, headers and body (Node's server.requestTimeout); responses and streams are not limited. */
    httpRequestTimeoutSeconds: int(env, 'HTTP_REQUEST_TIMEOUT_SECONDS', 30, 1, 3600),
    /** Per-user quotas on POST /v1/videos (api/quotas.ts): videos queued + rendering at once, and submissions per minute (shared through Redis). */
    userQuotas: {
      maxActiveVideos: int(env, 'USER_MAX_ACTIVE_VIDEOS', 20, 1, 1_000_000),
      submitsPerMinute: int(env, 'USER_SUBMITS_PER_MINUTE', 60, 1, 1_000_000),
    },
    /** scrypt runs in libuv's 4-thread pool, which file serving shares: bound how many run, and how many wait. */
    passwordHashing: {
      concurrency: int(env, 'PASSWORD_HASH_CONCURRENCY', 2, 1, 64),
      queue: int(env, 'PASSWORD_HASH_QUEUE', 32, 0, 10_000),
    },
    /** GET /v1/videos/:id/events streams one API process holds open at once; past it, 503 with Retry-After. */
    eventsMaxConnections: int(env, 'EVENTS_MAX_CONNECTIONS', 1000, 1, 1_000_000),
    /** Direct uploads (api/uploads.ts). maxBytes is also what a worker reads of an upload; the default matches its 50 MB asset limit. */
    uploads: {
      maxBytes: int(env, 'UPLOAD_MAX_BYTES', 50_000_000, 1024, 5_000_000_000),
      urlTtlSeconds: int(env, 'UPLOAD_URL_TTL_SECONDS', 900, 60, 604_800),
      perMinute: int(env, 'USER_UPLOADS_PER_MINUTE', 60, 1, 1_000_000),
    },
    storage: {
      driver: storageDriver,
      mediaDir: resolve(read(env, 'MEDIA_DIR') ?? resolve(dataDir, 'media')),
      s3: {
        bucket: s3Bucket ?? '',
        region: read(env, 'S3_REGION') ?? read(env, 'AWS_REGION') ?? 'us-east-1',
        endpoint: url(env, 'S3_ENDPOINT', ['http:', 'https:']),
        forcePathStyle: bool(env, 'S3_FORCE_PATH_STYLE', false),
      },
      cdnBaseUrl: cdnBaseUrl ? trimSlash(cdnBaseUrl) : undefined,
      /** Lifetime of the signed URLs minted for private videos on each read (S3 presigning allows at most 7 days). */
      mediaUrlTtlSeconds: int(env, 'MEDIA_URL_TTL_SECONDS', 3600, 60, 604_800),
    },
    worker: {
      id: read(env, 'WORKER_ID') ?? `${hostname()}-${process.pid}`,
      concurrency: int(env, 'WORKER_CONCURRENCY', 1, 1, 64),
      lockSeconds: int(env, 'WORKER_LOCK_SECONDS', 30, 5, 600),
      /** Times a job may lose its worker (stall: SIGKILL, power loss) before it fails as worker_lost. BullMQ's maxStalledCount: every worker must use the same value. */
      lostLimit: int(env, 'WORKER_LOST_LIMIT', 5, 0, 100),
      /** 'ec2' records the instance id (WORKER_ID) and polls the instance metadata service for spot notices. */
      provider: oneOf(env, 'WORKER_PROVIDER', ['local', 'ec2'] as const, 'local'),
      /** SIGTERM drains against this deadline; past it the job goes back to the queue for another worker. */
      drainDeadlineSeconds: int(env, 'WORKER_DRAIN_DEADLINE_SECONDS', 100, 1, 86_400),
      /** Instance metadata service, polled for spot notices when WORKER_PROVIDER=ec2 or IMDS_ENDPOINT is set. */
      imdsEndpoint: trimSlash(url(env, 'IMDS_ENDPOINT', ['http:', 'https:'], 'http://169.254.169.254')!),
      imdsEnabled: read(env, 'IMDS_ENDPOINT') !== undefined || read(env, 'WORKER_PROVIDER') === 'ec2',
      imdsPollSeconds: int(env, 'IMDS_POLL_SECONDS', 5, 1, 60),
      timeoutSeconds: renderTimeoutSeconds,
      /** Each job's own time limit, derived from its spec (engine/render-budget.ts), is kept within these. */
      timeLimit: renderTimeLimitBounds(env, renderTimeoutSeconds),
      x264Preset: oneOf(env, 'X264_PRESET', ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium'] as const, 'veryfast'),
      assetsDir: resolve(read(env, 'ASSETS_DIR') ?? resolve(import.meta.dirname, '..', 'assets')),
      tmpDir: read(env, 'WORK_DIR'),
      /** The worker's /metrics, on HOST; 0 = a free port picked at start (`vgen up` runs several workers on one machine). */
      metricsPort: int(env, 'WORKER_METRICS_PORT', 9464, 0, 65535),
      /** Images over either limit are refused before rendering (decompression bombs). */
      maxAssetPixels: int(env, 'MAX_ASSET_PIXELS', ASSET_LIMIT_DEFAULTS.maxPixels, 4096, 1_000_000_000),
      maxAssetSide: int(env, 'MAX_ASSET_SIDE', ASSET_LIMIT_DEFAULTS.maxSide, 64, 65_535),
      /** Video clips longer than this (seconds) are refused before rendering. */
      maxAssetSeconds: int(env, 'MAX_ASSET_SECONDS', ASSET_LIMIT_DEFAULTS.maxSeconds, 1, 3600),
    },
    autoscaler: autoscalerConfig(env),
    /** OUTBOUND_ALLOW: private hosts and ranges asset downloads and webhooks may reach (development and tests only; logged at start). */
    outboundAllow: outboundAllow(env),
    /** Webhook delivery (api/webhooks.ts): the first retry's delay, doubled for each next one (12 attempts span about 24 h at the default). */
    webhooks: {
      backoffMs: int(env, 'WEBHOOK_BACKOFF_MS', 45_000, 1, 3_600_000),
    },
    /** Address range of the load balancer whose X-Forwarded-* headers are trusted. */
    trustProxy,
    logLevel,
  };
}

/** `vgen autoscaler` (and the autoscaler inside `vgen up`): bounds, pace, lease and the policy's inputs (docs/autoscaling.md). */
function autoscalerConfig(env: Env) {
  const provider = oneOf(env, 'AUTOSCALER_PROVIDER', ['local', 'ec2', 'none'] as const, 'local');
  const minWorkers = int(env, 'AUTOSCALER_MIN_WORKERS', 0, 0, 10_000);
  const maxWorkers = int(env, 'AUTOSCALER_MAX_WORKERS', 10, 0, 10_000);
  if (maxWorkers < minWorkers) throw new ConfigError('AUTOSCALER_MAX_WORKERS', `must be at least AUTOSCALER_MIN_WORKERS (${minWorkers}), got ${maxWorkers}`);
  const intervalSeconds = int(env, 'AUTOSCALER_INTERVAL_SECONDS', 5, 1, 300);
  const leaseSeconds = int(env, 'AUTOSCALER_LEASE_SECONDS', 15, 2, 600);
  return {
    provider,
    minWorkers,
    maxWorkers,
    /** The policy's scale-in stabilization window: scale in to the largest need seen this long. */
    scaleInSeconds: int(env, 'AUTOSCALER_SCALE_IN_SECONDS', 300, 0, 86_400),
    intervalSeconds,
    leaseSeconds,
    /** A job should start within this long of being queued (the policy's W). */
    waitTargetSeconds: int(env, 'AUTOSCALER_WAIT_TARGET_SECONDS', 60, 1, 86_400),
    /** Launch to ready; default 5 s for local child processes, 90 s for EC2 instances. */
    bootSeconds: int(env, 'AUTOSCALER_BOOT_SECONDS', provider === 'ec2' ? 90 : 5, 0, 3600),
    /** Render time assumed until completed jobs have been measured. */
    renderSeconds: int(env, 'AUTOSCALER_RENDER_SECONDS', 60, 1, 86_400),
    /** Port of the autoscaler's /metrics, on HOST; 0 = a free port picked at start. */
    metricsPort: int(env, 'AUTOSCALER_METRICS_PORT', 9465, 0, 65535),
  };
}

/** Floor and ceiling of a job's time limit; the ceiling defaults to, and may not exceed, RENDER_TIMEOUT_SECONDS. */
function renderTimeLimitBounds(env: Env, renderTimeoutSeconds: number) {
  const maxSeconds = int(env, 'RENDER_TIME_LIMIT_MAX_SECONDS', renderTimeoutSeconds, 1, renderTimeoutSeconds);
  const minSeconds = int(env, 'RENDER_TIME_LIMIT_MIN_SECONDS', Math.min(60, maxSeconds), 1, 86_400);
  if (minSeconds > maxSeconds)
    throw new ConfigError('RENDER_TIME_LIMIT_MIN_SECONDS', `must be at most RENDER_TIME_LIMIT_MAX_SECONDS (${maxSeconds}), got ${minSeconds}`);
  return { minSeconds, maxSeconds };
}

function outboundAllow(env: Env): OutboundPolicy {
  try {
    return parseOutboundAllow(read(env, 'OUTBOUND_ALLOW'));
  } catch (err) {
    throw new ConfigError('OUTBOUND_ALLOW', (err as Error).message);
  }
}

/**
 * METRICS_ADVERTISE_HOST, or else HOST when it names one address, or else
 * (HOST is every interface: 0.0.0.0, ::) this machine's hostname.
 */
function advertiseHost(env: Env): string {
  const set = read(env, 'METRICS_ADVERTISE_HOST');
  if (set !== undefined) {
    if (!/^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*|\[[0-9A-Fa-f:.]+\])$/.test(set))
      throw new ConfigError('METRICS_ADVERTISE_HOST', `must be a host name or address (IPv6 in brackets), got "${set}"`);
    return set;
  }
  const host = read(env, 'HOST') ?? '127.0.0.1';
  if (host === '0.0.0.0' || host === '::' || host === '[::]') return hostname();
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

function oneOfPattern(env: Env, name: string, pattern: RegExp, fallback: string): string {
  const raw = read(env, name) ?? fallback;
  if (!pattern.test(raw)) throw new ConfigError(name, `must match ${pattern}, got "${raw}"`);
  return raw;
}

export type Config = ReturnType<typeof loadConfig>;

/** loadConfig for a process entry point: print one line and exit on a bad value. */
export function configOrExit(env: Env = process.env): Config {
  try {
    return loadConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`vgen: configuration error: ${err.message}\n`);
    process.exit(1);
  }
}
