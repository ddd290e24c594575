// Configuration comes from environment variables only, validated once at start.
// A wrong or missing value stops the process with one line naming the variable.
import { hostname } from 'node:os';
import { resolve } from 'node:path';

export class ConfigError extends Error {
  constructor(readonly variable: string, reason: string) {
    super(`${variable} ${reason}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function read(env: Env, name: string): string | undefined {
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

function url(env: Env, name: string, protocols: string[], fallback?: string): string | undefined {
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

function bool(env: Env, name: string, fallback: boolean): boolean {
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

  return {
    redisUrl: url(env, 'REDIS_URL', ['redis:', 'rediss:'], 'redis://127.0.0.1:6379')!,
    queueName: oneOfPattern(env, 'QUEUE_NAME', /^[a-z][a-z0-9-]{0,63}$/, 'render'),
    databaseUrl: url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']),
    dataDir,
    host: read(env, 'HOST') ?? '127.0.0.1',
    port,
    publicUrl: trimSlash(url(env, 'PUBLIC_URL', ['http:', 'https:'], `http://127.0.0.1:${port}`)!),
    publicUrlSet: read(env, 'PUBLIC_URL') !== undefined,
    jwtSecret,
    renderAttempts: int(env, 'RENDER_ATTEMPTS', 3, 1, 10),
    accessTokenTtlSeconds: int(env, 'ACCESS_TOKEN_TTL_SECONDS', 900, 60, 86_400),
    refreshTokenTtlSeconds: int(env, 'REFRESH_TOKEN_TTL_SECONDS', 30 * 86_400, 3600, 365 * 86_400),
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
    },
    worker: {
      id: read(env, 'WORKER_ID') ?? `${hostname()}-${process.pid}`,
      concurrency: int(env, 'WORKER_CONCURRENCY', 1, 1, 64),
      lockSeconds: int(env, 'WORKER_LOCK_SECONDS', 30, 5, 600),
      timeoutSeconds: int(env, 'RENDER_TIMEOUT_SECONDS', 900, 10, 86_400),
      x264Preset: oneOf(env, 'X264_PRESET', ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium'] as const, 'veryfast'),
      assetsDir: resolve(read(env, 'ASSETS_DIR') ?? resolve(import.meta.dirname, '..', 'assets')),
      tmpDir: read(env, 'WORK_DIR'),
      metricsPort: int(env, 'WORKER_METRICS_PORT', 0, 0, 65535),
    },
    /** Address range of the load balancer whose X-Forwarded-* headers are trusted. */
    trustProxy,
    logLevel,
  };
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
