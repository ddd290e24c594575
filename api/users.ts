// Accounts: users, password hashes and long-lived API keys.
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { Queryable } from '../engine/db.js';
import { VgenError } from '../engine/errors.js';
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

/**
 * scrypt runs on libuv's thread pool (4 threads), which file reads, DNS
 * lookups and zlib share: 200 concurrent sign-ins queued 200 hashes there and
 * a file download waited behind all of them. So one process hashes at most
 * `concurrency` passwords at once, lets at most `queue` more wait, and turns
 * the rest away at once with a 503 (`HashingBusy`) instead of queueing them.
 * The gate is per process, as the thread pool is.
 */
class HashGate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(public concurrency: number, public queue: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running < this.concurrency) this.running++;
    else if (this.waiting.length < this.queue) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else throw new HashingBusy();
    try {
      return await fn();
    } finally {
      // Hand the slot straight to the next waiter, or give it back.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }

  get stats() {
    return { running: this.running, waiting: this.waiting.length };
  }

  /** No slot free and no room to wait: the next run() would be refused. */
  get full() {
    return this.running >= this.concurrency && this.waiting.length >= this.queue;
  }
}

/** Too many password checks in flight in this process: answer 503 with Retry-After, at once. */
export class HashingBusy extends VgenError {
  readonly retryAfterSeconds = 1;
  constructor() {
    super('unavailable', 'too many sign-ins are being checked right now; retry in a second');
  }
}

const gate = new HashGate(2, 32);

/** Set this process's bound on password hashing (PASSWORD_HASH_CONCURRENCY, PASSWORD_HASH_QUEUE). */
export function limitPasswordHashing(limits: { concurrency: number; queue: number }) {
  gate.concurrency = limits.concurrency;
  gate.queue = limits.queue;
}

/** Hashes running and waiting in this process (for tests and metrics). */
export const passwordHashingStats = () => gate.stats;

/**
 * True when a password check started now would be turned away: sign-in routes
 * ask this before reading the body (a flood is refused without parsing it).
 */
export const passwordHashingFull = () => gate.full;

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await gate.run(() => scrypt(password, salt, 32, SCRYPT));
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, N, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = await gate.run(() => scrypt(password, Buffer.from(salt, 'base64'), expected.length, {
    N: Number(N), r: Number(r), p: Number(p), maxmem: SCRYPT.maxmem,
  }));
  return timingSafeEqual(actual, expected);
}

// Control (Cc: NUL, ESC, …) and format (Cf: U+200B zero-width space, U+202E
// right-to-left override, U+FEFF, …) characters, lone surrogates (Cs), and
// every Default_Ignorable_Code_Point (U+034F combining grapheme joiner, the
// Hangul fillers U+115F, U+3164, U+FFA0, variation selectors, …): invisible
// or unstorable, they let two addresses look alike.
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Default_Ignorable_Code_Point}]/u;
// A combining mark that starts the address, a label or the domain, or sits on
// an ASCII letter (`admin@example.com` + U+0301 is `…coḿ`): a keyboard sends
// accented Latin letters precomposed, so this only makes look-alikes. Marks on
// other scripts' letters (Devanagari vowel signs, …) are part of the writing.
const STRAY_MARK = /(?:^|[\x00-\x7f])\p{M}/u;

/**
 * The form an email is stored and looked up in: NFKC, so `ｍｅ＠example.com`
 * and `me@example.com` are one account. Refuses, as a 400 naming `email`, an
 * address holding control or format characters. The API normalizes before
 * the schema checks the address's shape, so the shape checked is the one stored.
 */
export function normalizeEmail(raw: string): string {
  const email = raw.normalize('NFKC');
  if (INVISIBLE.test(raw) || INVISIBLE.test(email))
    throw new VgenError('invalid_request', 'email must not contain control or invisible characters (NUL, zero-width, bidirectional overrides, fillers)', 'email');
  if (STRAY_MARK.test(raw) || STRAY_MARK.test(email))
    throw new VgenError('invalid_request', 'email must not contain a combining mark on an ASCII character or at the start of a part', 'email');
  return email;
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

/** Revoke every API key of a user except `keep`; returns how many were revoked. */
export async function revokeApiKeys(q: Queryable, userId: string, keep: string): Promise<number> {
  const rows = await q.query('DELETE FROM api_keys WHERE user_id = $1 AND token_hash <> $2 RETURNING id', [userId, sha256(keep)]);
  return rows.length;
}

export async function findUserByApiKey(q: Queryable, token: string): Promise<User | null> {
  const rows = await q.query<User>(
    'SELECT u.id, u.email, u.role FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.token_hash = $1',
    [sha256(token)],
  );
  return rows[0] ?? null;
}
