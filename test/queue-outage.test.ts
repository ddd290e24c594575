// A hung Redis (SIGSTOP: the socket stays open, nothing answers) must not
// stall the API: after one enqueue times out, submits answer 503 at once
// (api/queue-health.ts), none 500, reads keep answering from the database,
// /readyz says unavailable within its timeout, and once Redis resumes,
// submits work again. Runs its own redis-server: never the shared one.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startApi, type RunningApi } from '../api/server.js';
import { configFrom, ownRedis, registerUser, runCleanups, smallSpec, testEnv } from './helpers.js';

after(runCleanups);

for (const backend of ['postgres', 'pglite'] as const) {
  describe(`with ${backend}`, () => {
    test('submits during a Redis hang answer 503 within 4 s, none 500; reads and /readyz answer; after it, submits work', { timeout: 60_000 }, async () => {
      const redis = await ownRedis();
      const env = await testEnv({ REDIS_URL: redis.url, ...(backend === 'pglite' ? { DATABASE_URL: '' } : {}) });
      let api: RunningApi | undefined = await startApi(configFrom(env));
      try {
        const u = await registerUser(api.url);
        const auth = { authorization: `Bearer ${u.token}` };
        const submit = () => fetch(`${api!.url}/v1/videos`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(smallSpec()) });
        // Until the API's Redis connection is ready a submit answers 503 (by design): wait for it.
        let first = await submit();
        for (let i = 0; i < 50 && first.status === 503; i++) {
          await sleep(100);
          first = await submit();
        }
        assert.equal(first.status, 202);
        const { id } = (await first.json()) as { id: string };

        redis.proc.kill('SIGSTOP');
        const t0 = performance.now();
        const answers = await Promise.all(Array.from({ length: 25 }, async () => {
          const res = await submit();
          await res.arrayBuffer();
          return { status: res.status, ms: performance.now() - t0 };
        }));
        assert.deepEqual([...new Set(answers.map((a) => a.status))], [503], `statuses: ${answers.map((a) => a.status)}`);
        const slowest = Math.max(...answers.map((a) => a.ms));
        // 0.5 s for the per-user submit limit (its Redis command times out, then counts locally) + the 3 s enqueue timeout.
        assert.ok(slowest < 4_000, `slowest submit answered after ${slowest.toFixed(0)} ms`);

        // The breaker is open: the next submit answers at once.
        let t = performance.now();
        assert.equal((await submit()).status, 503);
        assert.ok(performance.now() - t < 1_000, `a submit with the breaker open took ${(performance.now() - t).toFixed(0)} ms`);

        t = performance.now();
        const read = await fetch(`${api.url}/v1/videos/${id}`, { headers: auth });
        assert.equal(read.status, 200);
        assert.ok(performance.now() - t < 1_000, `a read took ${(performance.now() - t).toFixed(0)} ms`);

        t = performance.now();
        const ready = await fetch(`${api.url}/readyz`);
        assert.equal(ready.status, 503);
        assert.deepEqual(await ready.json(), { status: 'unavailable', redis: 'down', db: 'ok' });
        assert.ok(performance.now() - t < 1_500, `/readyz took ${(performance.now() - t).toFixed(0)} ms`);

        redis.proc.kill('SIGCONT');
        let status = 0;
        for (const deadline = performance.now() + 5_000; status !== 202 && performance.now() < deadline; await sleep(200)) status = (await submit()).status;
        assert.equal(status, 202, 'submits work again once Redis answers');
        assert.equal((await fetch(`${api.url}/readyz`)).status, 200);
      } finally {
        redis.proc.kill('SIGCONT');
        await api?.close();
        api = undefined;
        redis.proc.kill('SIGKILL');
      }
    });
  });
}
