// Credentials: refresh tokens rotate and a replayed one revokes its family;
// emails are NFKC-normalized and refused with invisible characters; the
// Bearer scheme is case-insensitive; `vgen up` keeps one operator key; the
// bound on concurrent password hashing turns the excess away at once.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { bearerToken } from '../api/auth.js';
import { startApi, type RunningApi } from '../api/server.js';
import { findUserByApiKey, HashingBusy, hashPassword, limitPasswordHashing, normalizeEmail, verifyPassword } from '../api/users.js';
import { OPERATOR_EMAIL, writeOperatorToken } from '../cli/up.js';
import { openDb } from '../engine/db.js';
import { VgenError } from '../engine/errors.js';
import { configFrom, freshDatabase, registerUser, runCleanups, tempDir, testEnv } from './helpers.js';

let api: RunningApi;
let base: string;

before(async () => {
  api = await startApi(configFrom(await testEnv()));
  base = api.url;
});
after(async () => {
  await api.close();
  await runCleanups();
});

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
const refresh = (refreshToken: string) => post('/v1/auth/refresh', { refreshToken });
const errorOf = async (res: Response) => ((await res.json()) as { error: { code: string; field?: string; message: string } }).error;

async function login(email: string, password: string) {
  const res = await post('/v1/auth/login', { email, password });
  assert.equal(res.status, 200);
  return (await res.json()) as { accessToken: string; refreshToken: string };
}

describe('refresh tokens rotate', () => {
  test('each refresh token trades once; replaying a used one revokes its whole family, newest included', async () => {
    const u = await registerUser(base);
    const first = await login(u.email, u.password);
    const r1 = await refresh(first.refreshToken);
    assert.equal(r1.status, 200);
    const second = (await r1.json()) as { accessToken: string; refreshToken: string };
    assert.notEqual(second.refreshToken, first.refreshToken);
    const r2 = await refresh(second.refreshToken);
    assert.equal(r2.status, 200);
    const third = (await r2.json()) as { refreshToken: string };

    // The first token again: a replay.
    const replay = await refresh(first.refreshToken);
    assert.equal(replay.status, 401);
    assert.match((await errorOf(replay)).message, /already used/);
    // Every token of that sign-in is dead now, the newest one too.
    for (const t of [third.refreshToken, second.refreshToken, first.refreshToken]) assert.equal((await refresh(t)).status, 401);

    // Another sign-in of the same user is another family, untouched.
    const other = await login(u.email, u.password);
    assert.equal((await refresh(other.refreshToken)).status, 200);
  });

  test('of concurrent refreshes of one token, exactly one succeeds', async () => {
    const u = await registerUser(base);
    const { refreshToken } = await login(u.email, u.password);
    const statuses = await Promise.all(Array.from({ length: 8 }, () => refresh(refreshToken).then((r) => r.status)));
    assert.deepEqual(statuses.filter((s) => s === 200).length, 1, `statuses: ${statuses}`);
    assert.deepEqual(statuses.filter((s) => s !== 200).every((s) => s === 401), true, `statuses: ${statuses}`);
  });

  test('an access token still is not a refresh token, and a refresh token is not an access token', async () => {
    const u = await registerUser(base);
    const t = await login(u.email, u.password);
    assert.equal((await refresh(t.accessToken)).status, 401);
    assert.equal((await fetch(`${base}/v1/videos`, { headers: { authorization: `Bearer ${t.refreshToken}` } })).status, 401);
  });
});

describe('emails', () => {
  const invisible: [string, string][] = [
    ['NUL', 'a\u0000b@example.com'],
    ['escape', 'a\u001bb@example.com'],
    ['right-to-left override', 'moc.elpmaxe@\u202Eevil.com'],
    ['zero-width space', 'ad\u200Bmin@example.com'],
    ['zero-width joiner', 'admin\u200D@example.com'],
    ['byte order mark', '\uFEFFadmin@example.com'],
    ['lone surrogate', 'a\uD800b@example.com'],
    ['combining grapheme joiner', 'ad\u034Fmin@example.com'],
    ['Hangul choseong filler', 'admin\u115F@example.com'],
    ['Hangul filler', '\u3164admin@example.com'],
    ['halfwidth Hangul filler', 'admin@exa\uFFA0mple.com'],
    ['variation selector', 'admin\uFE0F@example.com'],
    ['trailing combining acute', 'admin@example.com\u0301'],
    ['combining mark on an ASCII letter', 'adm\u0301in@example.com'],
    ['combining mark starting the local part', '\u0308admin@example.com'],
    ['combining mark starting the domain', 'admin@\u0308example.com'],
  ];
  for (const [name, email] of invisible) {
    test(`an email with a ${name} is a 400 naming email, on register and login`, async () => {
      const [{ n: before }] = (await api.db.query<{ n: number }>('SELECT count(*)::int AS n FROM users')) as [{ n: number }];
      for (const path of ['/v1/auth/register', '/v1/auth/login']) {
        const res = await post(path, { email, password: 'long enough password' });
        assert.equal(res.status, 400, path);
        const error = await errorOf(res);
        assert.deepEqual([error.code, error.field], ['invalid_request', 'email'], error.message);
      }
      const [{ n: after }] = (await api.db.query<{ n: number }>('SELECT count(*)::int AS n FROM users')) as [{ n: number }];
      assert.equal(after, before);
    });
  }

  test('emails are stored NFKC-normalized: a full-width address is the ASCII account', async () => {
    const local = `wide${Date.now().toString(36)}`;
    const wide = `${[...local].map((c) => String.fromCodePoint(c.codePointAt(0)! + 0xfee0)).join('')}＠example.com`;
    const res = await post('/v1/auth/register', { email: wide, password: 'long enough password' });
    assert.equal(res.status, 201);
    assert.equal(((await res.json()) as { user: { email: string } }).user.email, `${local}@example.com`);
    await login(`${local}@example.com`, 'long enough password');
    await login(wide, 'long enough password');
    assert.equal((await post('/v1/auth/register', { email: `${local}@example.com`, password: 'another password' })).status, 409);
  });

  test('the address is checked after NFKC: what it turns into a non-address is a 400', async () => {
    assert.equal(normalizeEmail('ｍｅ@example.com'), 'me@example.com');
    assert.throws(() => normalizeEmail('a\u2066b@example.com'), (e: unknown) => e instanceof VgenError && e.field === 'email');
    // Marks that belong to the script stay: a Devanagari vowel sign, a precomposed accented letter.
    assert.equal(normalizeEmail('\u0939\u093F\u0902@example.com'), '\u0939\u093F\u0902@example.com');
    assert.equal(normalizeEmail('caf\u00E9@example.com'), 'caf\u00E9@example.com');
    // U+FE6B SMALL COMMERCIAL AT becomes a second '@'.
    const res = await post('/v1/auth/register', { email: 'a\uFE6Bb@example.com', password: 'long enough password' });
    assert.equal(res.status, 400);
    assert.equal((await errorOf(res)).field, 'email');
  });
});

describe('Authorization header', () => {
  test('the Bearer scheme is case-insensitive; other schemes and malformed headers are 401', async () => {
    const u = await registerUser(base);
    for (const header of [`Bearer ${u.token}`, `bearer ${u.token}`, `BEARER ${u.token}`, `bEaReR  ${u.token} `])
      assert.equal((await fetch(`${base}/v1/videos`, { headers: { authorization: header } })).status, 200, header);
    for (const header of [`Basic ${u.token}`, `Bearer${u.token}`, `Bearer ${u.token} extra`, 'Bearer '])
      assert.equal((await fetch(`${base}/v1/videos`, { headers: { authorization: header } })).status, 401, header);
    assert.equal(bearerToken('bearer\tabc'), 'abc');
    assert.equal(bearerToken(undefined), undefined);
  });
});

describe('vgen up operator key', () => {
  test('kept across restarts while valid; otherwise a new one is minted and older ones are revoked', async () => {
    const dir = tempDir();
    const db = await openDb({ databaseUrl: await freshDatabase(), dataDir: dir });
    try {
      const first = await writeOperatorToken(db, dir);
      assert.equal(await writeOperatorToken(db, dir), first, 'a restart keeps the key');
      assert.equal(readFileSync(join(dir, 'token'), 'utf8').trim(), first);
      assert.equal((await findUserByApiKey(db, first))?.role, 'operator');

      rmSync(join(dir, 'token'));
      const second = await writeOperatorToken(db, dir);
      assert.notEqual(second, first);
      assert.equal(await findUserByApiKey(db, first), null, 'the lost key is revoked');
      assert.equal((await findUserByApiKey(db, second))?.role, 'operator');

      // A key that is not the operator's (here: someone else's) is not adopted.
      const u = await registerUser(base); // another database: any vgk_ key is unknown here
      writeFileSync(join(dir, 'token'), `vgk_notakey${u.id}\n`);
      const third = await writeOperatorToken(db, dir);
      assert.notEqual(third, second);
      assert.equal(await findUserByApiKey(db, second), null);
      const keys = await db.query('SELECT k.id FROM api_keys k JOIN users u ON u.id = k.user_id WHERE u.email = $1', [OPERATOR_EMAIL]);
      assert.equal(keys.length, 1, 'exactly one valid operator key');
      assert.ok(existsSync(join(dir, 'token')));
    } finally {
      await db.close();
    }
  });
});

describe('password hashing is bounded per process', () => {
  test('past the running and waiting slots, a hash is refused at once with HashingBusy', async () => {
    const stored = await hashPassword('a password');
    limitPasswordHashing({ concurrency: 1, queue: 2 });
    try {
      const t0 = performance.now();
      const results = await Promise.allSettled(Array.from({ length: 6 }, () => verifyPassword('a password', stored)));
      const ok = results.filter((r) => r.status === 'fulfilled' && r.value === true).length;
      const busy = results.filter((r) => r.status === 'rejected' && r.reason instanceof HashingBusy).length;
      assert.deepEqual([ok, busy], [3, 3]);
      assert.ok(performance.now() - t0 < 5_000);
    } finally {
      limitPasswordHashing({ concurrency: 2, queue: 32 });
    }
  });
});
