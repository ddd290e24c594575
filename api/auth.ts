// Accounts and authentication. Access tokens are short-lived HS256 JWTs (the
// algorithm is pinned: @fastify/jwt would otherwise accept any, `none`
// included); refresh tokens are JWTs of a different type that rotate: each is
// recorded in refresh_tokens and can be traded once, and trading one twice
// revokes its whole family (OAuth 2.0 Security BCP, refresh token rotation).
// `vgk_…` API keys are long-lived tokens for operators and scripts.
// Register and login are rate-limited per address and per email (rate-limit.ts),
// and the password hashing behind them is bounded per process (users.ts).
import { randomBytes } from 'node:crypto';
import fastifyJwt from '@fastify/jwt';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Type } from '@sinclair/typebox';
import type { Db, Queryable } from '../engine/db.js';
import { VgenError } from '../engine/errors.js';
import { authRateLimits, type AuthRateLimits } from './rate-limit.js';
import { Credentials, ErrorBody, Tokens } from './schemas.js';
import {
  createUser, findUserByApiKey, findUserByEmail, findUserById, HashingBusy, limitPasswordHashing, normalizeEmail, passwordHashingFull, verifyPassword, type User,
} from './users.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling: set by app.authenticate on protected routes. */
    auth: Caller | null;
  }
  interface FastifyInstance {
    authenticate: (req: FastifyRequest) => Promise<void>;
  }
}

export type Caller = Pick<User, 'id' | 'role'>;

interface Claims {
  sub: string;
  role: User['role'];
  typ: 'access' | 'refresh';
  /** Refresh tokens only: this token's id and its family's (one sign-in). */
  jti?: string;
  fam?: string;
}

export interface AuthOptions {
  db: Db;
  secret: string;
  accessTtl: number;
  refreshTtl: number;
  /** Sign-in rate limits live in this Redis, under a namespace (the queue name) that API replicas share. */
  redisUrl: string;
  namespace: string;
  rateLimits: AuthRateLimits;
  passwordHashing: { concurrency: number; queue: number };
}

/** `Authorization: Bearer <token>`; the scheme is case-insensitive (RFC 7235 §2.1). */
export function bearerToken(header: string | undefined): string | undefined {
  return header ? /^bearer[ \t]+(\S+)[ \t]*$/i.exec(header)?.[1] : undefined;
}

const tokenId = () => randomBytes(16).toString('base64url');
/**
 * Credentials and refresh tokens are small; the app-wide 1 MiB limit let a
 * deeply nested body cost ~175 ms of event loop to parse, unauthenticated.
 */
export const AUTH_BODY_LIMIT = 16 * 1024;
const TURNED_AWAY = Symbol('turned away');

// A fixed hash to compare against when the email is unknown, so a login takes
// the same time whether or not the account exists.
const DUMMY_HASH = 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

export const authPlugin = fp(async (app: FastifyInstance, opts: AuthOptions) => {
  const { db } = opts;
  await app.register(fastifyJwt, { secret: opts.secret, sign: { algorithm: 'HS256' }, verify: { algorithms: ['HS256'] } });
  app.decorateRequest('auth', null);
  limitPasswordHashing(opts.passwordHashing);
  const limits = await authRateLimits(app, { redisUrl: opts.redisUrl, namespace: opts.namespace, limits: opts.rateLimits, log: app.log });

  /** New tokens; the refresh token is recorded first, in `family` (a new one at sign-in). */
  const tokensFor = async (user: User, q: Queryable = db, family = tokenId()) => {
    const jti = tokenId();
    await q.query(
      `INSERT INTO refresh_tokens (jti, family_id, user_id, expires_at) VALUES ($1, $2, $3, now() + $4::int * interval '1 second')`,
      [jti, family, user.id, opts.refreshTtl],
    );
    return {
      user,
      accessToken: app.jwt.sign({ sub: user.id, role: user.role, typ: 'access' } satisfies Claims, { expiresIn: opts.accessTtl }),
      refreshToken: app.jwt.sign({ sub: user.id, role: user.role, typ: 'refresh', jti, fam: family } satisfies Claims, { expiresIn: opts.refreshTtl }),
      expiresIn: opts.accessTtl,
    };
  };
  /** A sign-in starts a family; the user's expired tokens go at the same time. */
  const signIn = async (user: User) => {
    await db.query('DELETE FROM refresh_tokens WHERE user_id = $1 AND expires_at < now()', [user.id]);
    return tokensFor(user);
  };

  const verify = (token: string, typ: Claims['typ']): Claims => {
    let claims: Claims;
    try {
      claims = app.jwt.verify<Claims>(token);
    } catch {
      throw new VgenError('unauthorized', 'token is invalid or expired');
    }
    if (claims.typ !== typ) throw new VgenError('unauthorized', `expected an ${typ} token`);
    return claims;
  };

  app.decorate('authenticate', async (req: FastifyRequest) => {
    const token = bearerToken(req.headers.authorization);
    if (!token) throw new VgenError('unauthorized', 'send Authorization: Bearer <token>');
    if (token.startsWith('vgk_')) {
      req.auth = await findUserByApiKey(db, token);
      if (!req.auth) throw new VgenError('unauthorized', 'API key is invalid');
      return;
    }
    const claims = verify(token, 'access');
    req.auth = { id: claims.sub, role: claims.role };
  });

  const errors = { 400: ErrorBody, 401: ErrorBody, 409: ErrorBody, 413: ErrorBody };
  const signInErrors = { ...errors, 429: ErrorBody, 503: ErrorBody };

  // The bound on password hashing turned a sign-in away: 503 with Retry-After,
  // answered here rather than thrown, so a flood does not log a line per request
  // (the error handler logs every 5xx); one summary line every 10 s instead.
  let turnedAway = 0;
  let lastReport = 0;
  const turnAway = (reply: FastifyReply, retryAfterSeconds = new HashingBusy().retryAfterSeconds) => {
    turnedAway++;
    if (Date.now() - lastReport > 10_000) {
      app.log.warn({ turnedAway }, 'password checks are saturated; sign-ins answered 503');
      lastReport = Date.now();
      turnedAway = 0;
    }
    return reply.status(503).header('retry-after', String(retryAfterSeconds)).send({ error: new HashingBusy().toJSON() });
  };

  // Sign-in routes: first, with the hashing gate already full, a 503 before
  // the body is read or parsed (a flood from many addresses then costs no
  // parsing); the address is counted before the body is read too; the email
  // is normalized (NFKC) before the schema checks it, and counted once valid,
  // before any password is hashed. The gate itself still decides (busy below).
  const gateOpen = async (_req: FastifyRequest, reply: FastifyReply) => {
    if (passwordHashingFull()) return turnAway(reply);
  };
  const signInHooks = {
    bodyLimit: AUTH_BODY_LIMIT,
    onRequest: [gateOpen, limits.perIp],
    preValidation: async (req: FastifyRequest) => {
      const body = req.body as { email?: unknown } | null;
      if (body && typeof body === 'object' && typeof body.email === 'string') body.email = normalizeEmail(body.email);
    },
    preHandler: async (req: FastifyRequest, reply: FastifyReply) => limits.perAccount(req, reply, (req.body as Credentials).email),
  };
  const busy = <T>(reply: FastifyReply, work: Promise<T>): Promise<T | typeof TURNED_AWAY> =>
    work.catch((err: unknown) => {
      if (!(err instanceof HashingBusy)) throw err;
      void turnAway(reply, err.retryAfterSeconds);
      return TURNED_AWAY;
    });

  app.post('/v1/auth/register', {
    schema: { tags: ['auth'], summary: 'Create an account', body: Credentials, response: { 201: Tokens, ...signInErrors } },
    ...signInHooks,
  }, async (req, reply) => {
    const { email, password } = req.body as Credentials;
    const user = await busy(reply, createUser(db, email, password));
    if (user === TURNED_AWAY) return reply;
    if (!user) throw new VgenError('conflict', 'an account with this email exists', 'email');
    return reply.status(201).send(await signIn(user));
  });

  app.post('/v1/auth/login', {
    schema: { tags: ['auth'], summary: 'Sign in', body: Credentials, response: { 200: Tokens, ...signInErrors } },
    ...signInHooks,
  }, async (req, reply) => {
    const { email, password } = req.body as Credentials;
    const found = await findUserByEmail(db, email);
    const ok = await busy(reply, verifyPassword(password, found?.password_hash ?? DUMMY_HASH));
    if (ok === TURNED_AWAY) return reply;
    if (!found || !ok) throw new VgenError('unauthorized', 'email or password is wrong');
    return signIn({ id: found.id, email: found.email, role: found.role });
  });

  app.post('/v1/auth/refresh', {
    bodyLimit: AUTH_BODY_LIMIT,
    // Counted per address before the body is read: it needs no credentials.
    onRequest: limits.refreshPerIp,
    schema: {
      tags: ['auth'], summary: 'Trade a refresh token for new tokens',
      description: 'Each refresh token can be traded once, for a new pair. Presenting one that was already traded revokes every refresh token of that sign-in: sign in again.',
      body: Type.Object({ refreshToken: Type.String({ minLength: 1, maxLength: 4096 }) }, { additionalProperties: false }),
      response: { 200: Tokens, ...errors, 429: ErrorBody },
    },
  }, async (req) => {
    const claims = verify((req.body as { refreshToken: string }).refreshToken, 'refresh');
    if (!claims.jti) throw new VgenError('unauthorized', 'refresh token predates rotation; sign in again');
    // Consume it: one conditional UPDATE, so of two concurrent trades exactly one wins.
    const tokens = await db.tx(async (q) => {
      const [row] = await q.query<{ user_id: string; family_id: string }>(
        `UPDATE refresh_tokens SET used_at = now()
         WHERE jti = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
         RETURNING user_id, family_id`,
        [claims.jti],
      );
      if (!row) return null;
      const user = await findUserById(q, row.user_id);
      if (!user) throw new VgenError('unauthorized', 'account no longer exists');
      return tokensFor(user, q, row.family_id);
    });
    if (tokens) return tokens;

    const [row] = await db.query<{ family_id: string; used: boolean }>(
      'SELECT family_id, used_at IS NOT NULL AS used FROM refresh_tokens WHERE jti = $1',
      [claims.jti],
    );
    if (row?.used) {
      // A replay: the client's own stale copy, or a thief's. Either way no token
      // of this sign-in can be trusted now, the newest included.
      await db.query('UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL', [row.family_id]);
      req.log.warn({ userId: claims.sub, family: row.family_id }, 'refresh token reused; its family is revoked');
      throw new VgenError('unauthorized', 'refresh token was already used; every token of this sign-in is revoked, sign in again');
    }
    throw new VgenError('unauthorized', 'refresh token is revoked or unknown; sign in again');
  });
});
