// One small query interface over two backends: PostgreSQL through `pg` when
// DATABASE_URL is set, otherwise PGlite (Postgres compiled to WASM) embedded in
// the data dir. Both run the same SQL, so nothing above this file knows which.
import { linkSync, mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { VgenError } from './errors.js';

export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
}

export interface Db extends Queryable {
  /** Run fn in one transaction; a throw rolls it back. */
  tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T>;
  ping(): Promise<void>;
  close(): Promise<void>;
  readonly kind: 'postgres' | 'pglite';
}

/**
 * Every pooled connection stayed busy past connectionTimeoutMillis (pg-pool
 * rejects with this message): the database is saturated, which is a 503 a
 * client may retry, never a 500.
 */
export function poolExhausted(err: unknown): VgenError | undefined {
  return err instanceof Error && /timeout exceeded when trying to connect/.test(err.message)
    ? new VgenError('unavailable', 'the database is busy; nothing was changed, retry shortly')
    : undefined;
}
const mapPoolError = (err: unknown): never => {
  throw poolExhausted(err) ?? err;
};

async function postgres(url: string): Promise<Db> {
  const pool = new pg.Pool({ connectionString: url, max: 10, idleTimeoutMillis: 30_000, connectionTimeoutMillis: 5_000 });
  // A dropped idle connection must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  const run = async <T>(c: pg.Pool | pg.PoolClient, sql: string, params?: unknown[]) => (await c.query(sql, params)).rows as T[];
  return {
    kind: 'postgres',
    query: <T>(sql: string, params?: unknown[]) => run<T>(pool, sql, params).catch(mapPoolError),
    async tx(fn) {
      const client = await pool.connect().catch(mapPoolError);
      try {
        await client.query('BEGIN');
        const out = await fn({ query: (sql, params) => run(client, sql, params) });
        await client.query('COMMIT');
        return out;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    },
    ping: async () => void (await pool.query('SELECT 1')),
    close: () => pool.end(),
  };
}

async function pglite(dataDir: string): Promise<Db> {
  const { PGlite } = await import('@electric-sql/pglite');
  const dir = join(dataDir, 'pglite');
  mkdirSync(dir, { recursive: true });
  const unlock = lockPglite(dir);
  let db: InstanceType<typeof PGlite>;
  try {
    db = await PGlite.create(dir);
  } catch (err) {
    unlock();
    throw err;
  }
  return {
    kind: 'pglite',
    query: async (sql, params) => (await db.query(sql, params)).rows as never[],
    tx: (fn) => db.transaction((t) => fn({ query: async (sql, params) => (await t.query(sql, params)).rows as never[] })),
    ping: async () => void (await db.query('SELECT 1')),
    async close() {
      try {
        await db.close();
      } finally {
        unlock();
      }
    },
  };
}

interface LockHolder {
  pid: number;
  /** The process's start time in clock ticks since boot (Linux), so a reused pid is not mistaken for the holder. */
  procStart?: string;
  host: string;
  startedAt: string;
}

function procStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function holderAlive(h: LockHolder): boolean {
  if (h.host !== hostname()) return true; // another machine's process (a shared mount): cannot tell, so assume it runs
  try {
    process.kill(h.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  const now = procStart(h.pid);
  return !(h.procStart && now && now !== h.procStart);
}

/**
 * PGlite is one process's database: two processes opening the same files
 * corrupt them. Hold `<dir>/vgen.lock` (pid, process start time, host) for
 * as long as the database is open; a second opener is refused with one clear
 * line. A lock whose process is gone (even SIGKILLed) is stale and taken over.
 * Returns the release function.
 */
export function lockPglite(dir: string): () => void {
  const file = join(dir, 'vgen.lock');
  const me: LockHolder = { pid: process.pid, procStart: procStart(process.pid), host: hostname(), startedAt: new Date().toISOString() };
  const content = JSON.stringify(me);
  const read = (path: string): LockHolder | undefined => {
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as LockHolder;
    } catch {
      return undefined; // gone, or not ours to read: treated as stale below only if it is gone
    }
  };
  for (let attempt = 0; attempt < 5; attempt++) {
    // Written in full under a private name, then linked into place: link fails
    // if a lock exists, and nobody ever reads a half-written one.
    const tmp = `${file}.${process.pid}.${attempt}`;
    writeFileSync(tmp, content, { mode: 0o600 });
    try {
      linkSync(tmp, file);
      const release = () => {
        process.off('exit', release);
        const holder = read(file);
        if (holder?.pid === me.pid && holder.startedAt === me.startedAt) {
          try {
            unlinkSync(file);
          } catch {
            /* already gone */
          }
        }
      };
      process.on('exit', release);
      return release;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      unlinkSync(tmp);
    }
    const holder = read(file);
    if (holder && holderAlive(holder))
      throw new VgenError('unavailable',
        `the PGlite database in ${dir} is in use by process ${holder.pid}${holder.host !== me.host ? ` on ${holder.host}` : ''} (since ${holder.startedAt}); ` +
        'PGlite serves one process only: stop that one, or set DATABASE_URL to a PostgreSQL server to run several');
    // Stale: move it aside, and make sure what was moved is the lock judged
    // stale, not one a racing process has just taken (put that one back).
    const aside = `${file}.stale.${process.pid}`;
    try {
      renameSync(file, aside);
    } catch {
      continue; // someone else moved it first
    }
    const moved = read(aside);
    if (holder && moved && (moved.pid !== holder.pid || moved.startedAt !== holder.startedAt)) {
      try {
        linkSync(aside, file);
      } catch {
        /* a third process holds it now; the next attempt will say so */
      }
    }
    unlinkSync(aside);
  }
  throw new VgenError('unavailable', `could not take the lock ${file}: other processes keep taking it`);
}

export async function openDb(opts: { databaseUrl?: string; dataDir: string }): Promise<Db> {
  const db = opts.databaseUrl ? await postgres(opts.databaseUrl) : await pglite(opts.dataDir);
  try {
    await migrate(db);
  } catch (err) {
    await db.close().catch(() => {});
    throw err;
  }
  return db;
}

const MIGRATIONS_DIR = join(import.meta.dirname, 'migrations');

/**
 * Apply engine/migrations/NNN_name.sql in order, each once, each in its own
 * transaction. An advisory lock lets several API replicas start together.
 */
export async function migrate(db: Db): Promise<number[]> {
  const files = readdirSync(MIGRATIONS_DIR).filter((f) => /^\d+_.+\.sql$/.test(f)).sort();
  return db.tx(async (q) => {
    await q.query('SELECT pg_advisory_xact_lock(7340001)');
    await q.query('CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
    const done = new Set((await q.query<{ version: number }>('SELECT version FROM schema_migrations')).map((r) => r.version));
    const applied: number[] = [];
    for (const file of files) {
      const version = Number.parseInt(file, 10);
      if (done.has(version)) continue;
      for (const statement of splitSql(readFileSync(join(MIGRATIONS_DIR, file), 'utf8'))) await q.query(statement);
      await q.query('INSERT INTO schema_migrations (version) VALUES ($1)', [version]);
      applied.push(version);
    }
    return applied;
  });
}

// Extended-protocol queries take one statement each; migrations keep to plain
// statements separated by `;` at the end of a line (no function bodies).
function splitSql(sql: string): string[] {
  return sql
    .replace(/--.*$/gm, '')
    .split(/;\s*$/m)
    .map((s) => s.trim())
    .filter(Boolean);
}
