// Accounts and authentication. Access tokens are short-lived HS256 JWTs (the
// algorithm is pinned: @fastify/jwt would otherwise accept any, `none`
// included); refresh tokens are JWTs of a different type; `vgk_…` API keys
// are long-lived tokens for operators and scripts.
import fastifyJwt from '@fastify/jwt';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Type } from '@sinclair/typebox';
import type { Db } from '../engine/db.js';
import { VgenError } from '../engine/errors.js';
import { Credentials, ErrorBody, Tokens } from './schemas.js';
import { createUser, findUserByApiKey, findUserByEmail, findUserById, verifyPassword, type User } from './users.js';

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
}

// A fixed hash to compare against when the email is unknown, so a login takes
// the same time whether or not the account exists.
const DUMMY_HASH = 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

export const authPlugin = fp(async (app: FastifyInstance, opts: { db: Db; secret: string; accessTtl: number; refreshTtl: number }) => {
  const { db } = opts;
  await app.register(fastifyJwt, { secret: opts.secret, sign: { algorithm: 'HS256' }, verify: { algorithms: ['HS256'] } });
  app.decorateRequest('auth', null);

  const tokensFor = (user: User) => ({
    user,
    accessToken: app.jwt.sign({ sub: user.id, role: user.role, typ: 'access' } satisfies Claims, { expiresIn: opts.accessTtl }),
    refreshToken: app.jwt.sign({ sub: user.id, role: user.role, typ: 'refresh' } satisfies Claims, { expiresIn: opts.refreshTtl }),
    expiresIn: opts.accessTtl,
  });

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
    const header = req.headers.authorization;
    const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
    if (!token) throw new VgenError('unauthorized', 'send Authorization: Bearer <token>');
    if (token.startsWith('vgk_')) {
      req.auth = await findUserByApiKey(db, token);
      if (!req.auth) throw new VgenError('unauthorized', 'API key is invalid');
      return;
    }
    const claims = verify(token, 'access');
    req.auth = { id: claims.sub, role: claims.role };
  });

  const errors = { 400: ErrorBody, 401: ErrorBody, 409: ErrorBody };

  app.post('/v1/auth/register', {
    schema: { tags: ['auth'], summary: 'Create an account', body: Credentials, response: { 201: Tokens, ...errors } },
  }, async (req, reply) => {
    const { email, password } = req.body as Credentials;
    const user = await createUser(db, email, password);
    if (!user) throw new VgenError('conflict', 'an account with this email exists', 'email');
    return reply.status(201).send(tokensFor(user));
  });

  app.post('/v1/auth/login', {
    schema: { tags: ['auth'], summary: 'Sign in', body: Credentials, response: { 200: Tokens, ...errors } },
  }, async (req) => {
    const { email, password } = req.body as Credentials;
    const found = await findUserByEmail(db, email);
    const ok = await verifyPassword(password, found?.password_hash ?? DUMMY_HASH);
    if (!found || !ok) throw new VgenError('unauthorized', 'email or password is wrong');
    return tokensFor({ id: found.id, email: found.email, role: found.role });
  });

  app.post('/v1/auth/refresh', {
    schema: {
      tags: ['auth'], summary: 'Trade a refresh token for new tokens',
      body: Type.Object({ refreshToken: Type.String({ minLength: 1, maxLength: 4096 }) }, { additionalProperties: false }),
      response: { 200: Tokens, ...errors },
    },
  }, async (req) => {
    const claims = verify((req.body as { refreshToken: string }).refreshToken, 'refresh');
    const user = await findUserById(db, claims.sub);
    if (!user) throw new VgenError('unauthorized', 'account no longer exists');
    return tokensFor(user);
  });
});
