// Accounts: users, password hashes and long-lived API keys.
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { Queryable } from '../engine/db.js';
import { newId } from '../engine/ids.js';

const scrypt = promisify(scryptCb) as (pw: string, salt: Buffer, len: number, opts: object) => Promise<Buffer>;
// N=2^15, r=8: ~50 ms and 32 MiB a hash; the cost lives in the stored string so it can rise later.
const SCRYPT = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

export type Role = 'user' | 'operator';
export interface User {
  id: string;
  email: string;
  role: Role;
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(password, salt, 32, SCRYPT);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, N, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = await scrypt(password, Buffer.from(salt, 'base64'), expected.length, {
    N: Number(N), r: Number(r), p: Number(p), maxmem: SCRYPT.maxmem,
  });
  return timingSafeEqual(actual, expected);
}

/** Returns null when the email is taken (case-insensitively). */
export async function createUser(q: Queryable, email: string, password: string, role: Role = 'user'): Promise<User | null> {
  const rows = await q.query<User>(
    `INSERT INTO users (id, email, password_hash, role) VALUES ($1, $2, $3, $4)
     ON CONFLICT DO NOTHING RETURNING id, email, role`,
    [newId('usr'), email, await hashPassword(password), role],
  );
  return rows[0] ?? null;
}

export async function findUserByEmail(q: Queryable, email: string) {
  const rows = await q.query<User & { password_hash: string }>(
    'SELECT id, email, role, password_hash FROM users WHERE lower(email) = lower($1)',
    [email],
  );
  return rows[0] ?? null;
}

export async function findUserById(q: Queryable, id: string): Promise<User | null> {
  const rows = await q.query<User>('SELECT id, email, role FROM users WHERE id = $1', [id]);
  return rows[0] ?? null;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** A new API key (`vgk_…`); only its hash is stored, so it is shown once. */
export async function createApiKey(q: Queryable, userId: string): Promise<string> {
  const token = `vgk_${randomBytes(24).toString('base64url')}`;
  await q.query('INSERT INTO api_keys (id, user_id, token_hash) VALUES ($1, $2, $3)', [newId('key'), userId, sha256(token)]);
  return token;
}

export async function findUserByApiKey(q: Queryable, token: string): Promise<User | null> {
  const rows = await q.query<User>(
    'SELECT u.id, u.email, u.role FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.token_hash = $1',
    [sha256(token)],
  );
  return rows[0] ?? null;
}
