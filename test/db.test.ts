// The two database backends run the same SQL: migrations apply once, and a
// throw inside tx() rolls everything back, on PGlite and on Postgres alike.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { migrate, openDb, type Db } from '../engine/db.js';
import { freshDatabase, runCleanups, tempDir } from './helpers.js';

after(runCleanups);

const backends: [string, () => Promise<Db>][] = [
  ['pglite', () => openDb({ dataDir: tempDir() })],
  ['postgres', async () => openDb({ databaseUrl: await freshDatabase(), dataDir: tempDir() })],
];

for (const [name, open] of backends) {
  test(`${name}: migrations apply once; tx rolls back on a throw`, async () => {
    const db = await open();
    try {
      assert.equal(db.kind, name);
      const versions = await db.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      // Every file in engine/migrations, each once (1–3, then 005_fair_scheduling, and whatever else lands there).
      const files = readdirSync(join(import.meta.dirname, '../engine/migrations')).filter((f) => /^\d+_.+\.sql$/.test(f));
      assert.deepEqual(versions.map((v) => v.version), files.map((f) => Number.parseInt(f, 10)).sort((a, b) => a - b));
      assert.deepEqual(versions.map((v) => v.version).filter((v) => [1, 2, 3, 5].includes(v)), [1, 2, 3, 5]);
      assert.deepEqual(await migrate(db), [], 'a second start applies nothing');

      await assert.rejects(db.tx(async (q) => {
        await q.query(`INSERT INTO users (id, email, password_hash) VALUES ('usr_rollback', 'r@example.com', 'x')`);
        throw new Error('boom');
      }), /boom/);
      assert.deepEqual(await db.query(`SELECT id FROM users WHERE id = 'usr_rollback'`), []);

      // The CHECK constraints hold on both: a status outside the state machine is refused.
      await db.query(`INSERT INTO users (id, email, password_hash) VALUES ('usr_a', 'a@example.com', 'x')`);
      await assert.rejects(db.query(`INSERT INTO videos (id, user_id, spec, status) VALUES ('vid_a', 'usr_a', '{}', 'exploded')`));
    } finally {
      await db.close();
    }
  });
}
