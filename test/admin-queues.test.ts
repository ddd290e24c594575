// bull-board at /admin/queues: no token 401, a user token 403 (header, query
// or cookie alike), an operator token opens it and lists the render queue; a
// token given once in the query becomes a path-scoped HttpOnly cookie and the
// browser is sent to the same page without it; the board changes nothing.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startApi, type RunningApi } from '../api/server.js';
import { writeOperatorToken } from '../cli/up.js';
import { configFrom, openQueue, registerUser, runCleanups, tempDir, testEnv } from './helpers.js';

let api: RunningApi;
let env: Record<string, string>;
let operator: string;
let user: string;

before(async () => {
  env = await testEnv();
  api = await startApi(configFrom(env));
  operator = await writeOperatorToken(api.db, tempDir());
  user = (await registerUser(api.url)).token;
});
after(async () => {
  await api.close();
  await runCleanups();
});

const get = (path: string, headers: Record<string, string> = {}, method = 'GET') =>
  fetch(`${api.url}${path}`, { method, headers, redirect: 'manual' });
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const code = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;

describe('/admin/queues', () => {
  test('no token: 401 in the API error shape, on the page, its API and its static files', async () => {
    for (const path of ['/admin/queues', '/admin/queues/', '/admin/queues/api/queues', '/admin/queues/static/images/logo.svg', '/admin/queues/queue/x/y']) {
      const res = await get(path);
      assert.equal(res.status, 401, path);
      assert.equal(await code(res), 'unauthorized');
      assert.equal(res.headers.get('set-cookie'), null);
    }
    assert.equal((await get('/admin/queues', bearer('vgk_not-a-real-key'))).status, 401);
    assert.equal((await get('/admin/queues', bearer('eyJhbGciOiJub25lIn0.e30.'))).status, 401);
  });

  test('a user token: 403 by header, query or cookie, and no cookie is set', async () => {
    const byHeader = await get('/admin/queues/api/queues', bearer(user));
    assert.equal(byHeader.status, 403);
    assert.equal(await code(byHeader), 'forbidden');
    const byQuery = await get(`/admin/queues?token=${user}`);
    assert.equal(byQuery.status, 403);
    assert.equal(byQuery.headers.get('set-cookie'), null);
    assert.equal((await get('/admin/queues/api/queues', { cookie: `vgen_admin=${user}` })).status, 403);
  });

  test('a token that is not token-shaped never reaches a Set-Cookie header', async () => {
    for (const bad of [`${operator}; Domain=evil.example`, `${operator}\r\nX-Evil: 1`, '', 'a'.repeat(5000), `${operator} `]) {
      const res = await get(`/admin/queues?token=${encodeURIComponent(bad)}`);
      assert.equal(res.status, 401, JSON.stringify(bad.slice(0, 40)));
      assert.equal(res.headers.get('set-cookie'), null);
      assert.equal(await code(res), 'unauthorized');
    }
    // A malformed cookie is no token at all.
    assert.equal((await get('/admin/queues', { cookie: `vgen_admin=${operator};x` })).status, 200, 'the cookie part before ; is the token');
    assert.equal((await get('/admin/queues', { cookie: 'vgen_admin="quoted"' })).status, 401);
    assert.equal((await get('/admin/queues', { cookie: 'c'.repeat(15_000) })).status, 401);
  });

  test('an operator bearer token opens the board, and its API lists the render queue', async () => {
    const page = await get('/admin/queues', bearer(operator));
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await page.text(), /vgen queues/);
    assert.equal(page.headers.get('cache-control'), 'no-store');

    const res = await get('/admin/queues/api/queues', bearer(operator));
    assert.equal(res.status, 200);
    const body = (await res.json()) as { queues: { name: string; readOnlyMode: boolean }[] };
    const names = body.queues.map((q) => q.name);
    assert.ok(names.includes(env.QUEUE_NAME!), `queue ${env.QUEUE_NAME} in ${names.join(', ')}`);
    assert.equal(body.queues.find((q) => q.name === env.QUEUE_NAME)!.readOnlyMode, true);
  });

  test('?token= sets an HttpOnly, SameSite=Strict cookie on /admin/queues and redirects without the token', async () => {
    const res = await get(`/admin/queues/queue/${env.QUEUE_NAME}?status=failed&token=${operator}`);
    assert.equal(res.status, 303);
    assert.equal(res.headers.get('location'), `/admin/queues/queue/${env.QUEUE_NAME}?status=failed`);
    const cookie = res.headers.get('set-cookie') ?? '';
    assert.match(cookie, new RegExp(`^vgen_admin=${operator.replace(/[.]/g, '\\.')};`));
    assert.match(cookie, /; Path=\/admin\/queues(;|$)/);
    assert.match(cookie, /; HttpOnly(;|$)/);
    assert.match(cookie, /; SameSite=Strict(;|$)/);
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer');

    const withCookie = await get('/admin/queues/api/queues', { cookie: `other=1; vgen_admin=${operator}` });
    assert.equal(withCookie.status, 200);
    assert.equal((await get('/admin/queues/static/images/logo.svg', { cookie: `vgen_admin=${operator}` })).status, 200);
  });

  test('the board is read-only: changing a job through it is refused and the job is untouched', async () => {
    const queue = openQueue(env);
    const job = await queue.add('render', { videoId: 'vid_x' } as never, { jobId: 'vid_board_test', delay: 60_000 });
    const promote = await get(`/admin/queues/api/queues/${encodeURIComponent(env.QUEUE_NAME!)}/${job.id}/promote`, bearer(operator), 'PUT');
    assert.equal(promote.status, 405);
    const clean = await get(`/admin/queues/api/queues/${encodeURIComponent(env.QUEUE_NAME!)}/empty`, bearer(operator), 'PUT');
    assert.equal(clean.status, 405);
    assert.equal(await (await queue.getJob(job.id!))!.getState(), 'delayed');
    await job.remove();
  });
});
