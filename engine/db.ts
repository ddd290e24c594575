// One small query interface over two backends: PostgreSQL through `pg` when
// DATABASE_URL is set, otherwise PGlite (Postgres compiled to WASM) embedded in
// the data dir. Both run the same SQL, so nothing above this file knows which.
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';

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

async function postgres(url: string): Promise<Db> {
  const pool = new pg.Pool({ connectionString: url, max: 10, idleTimeoutMillis: 30_000, connectionTimeoutMillis: 5_000 });
  // A dropped idle connection must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  const run = async <T>(c: pg.Pool | pg.PoolClient, sql: string, params?: unknown[]) => (await c.query(sql, params)).rows as T[];
  return {
    kind: 'postgres',
    query: (sql, params) => run(pool, sql, params),
    async tx(fn) {
      const client = await pool.connect();
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
  const db = await PGlite.create(dir);
  return {
    kind: 'pglite',
    query: async (sql, params) => (await db.query(sql, params)).rows as never[],
    tx: (fn) => db.transaction((t) => fn({ query: async (sql, params) => (await t.query(sql, params)).rows as never[] })),
    ping: async () => void (await db.query('SELECT 1')),
    close: () => db.close(),
  };
}

export async function openDb(opts: { databaseUrl?: string; dataDir: string }): Promise<Db> {
  const db = opts.databaseUrl ? await postgres(opts.databaseUrl) : await pglite(opts.dataDir);
  await migrate(db);
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
