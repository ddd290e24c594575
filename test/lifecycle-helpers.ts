// Shared by the worker-lifecycle tests: real `vgen worker` processes on a
// test's own queue, the registry they write to, and polling helpers.
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { connectRedis, whenReady } from '../engine/redis.js';
import { createRegistry, type Registry } from '../engine/registry.js';
import type { RenderSpec } from '../engine/spec.js';
import { onCleanup, smallSpec } from './helpers.js';

export interface WorkerProc {
  child: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** Lines it printed (pino JSON), for diagnosis. */
  output: string[];
}

export function spawnWorker(env: Record<string, string>, extra: Record<string, string> = {}): WorkerProc {
  const child = spawn(process.execPath, ['bin/vgen.js', 'worker'], { env: { ...process.env, ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const keep = (chunk: Buffer) => {
    output.push(...String(chunk).split('\n').filter(Boolean));
    if (output.length > 500) output.splice(0, output.length - 500);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  onCleanup(() => void child.kill('SIGKILL'));
  return { child, exited, output };
}

/** A registry on the test's queue, with its own connection; both closed at cleanup. */
export async function openRegistry(env: Record<string, string>): Promise<{ registry: Registry; redis: Redis }> {
  const redis = connectRedis(env.REDIS_URL!, 'worker');
  await whenReady(redis);
  const registry = createRegistry(redis, { queueName: env.QUEUE_NAME! });
  onCleanup(async () => {
    await registry.close();
    redis.disconnect();
  });
  return { registry, redis };
}

export async function until<T>(what: string, fn: () => Promise<T | false | undefined | null> | T | false | undefined | null, timeoutMs = 30_000, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** A render that takes a few seconds on two cores (the worker is still at it when the test acts). */
export const slowSpec = smallSpec({
  output: { width: 480, height: 270, fps: 25 },
  scenes: [
    { duration: 5, background: { image: 'assets/photo.jpg' }, caption: { text: 'one' } },
    { duration: 5, background: { image: 'assets/photo2.jpg' }, caption: { text: '二' }, transition: { type: 'dissolve', duration: 0.5 } },
  ],
}) as RenderSpec;
