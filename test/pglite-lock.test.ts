// PGlite is one process's database: a second `vgen api` on a data dir another
// process holds refuses to start with one clear line instead of corrupting
// it, and the lock of a process that died (even by SIGKILL) is taken over.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { openDb } from '../engine/db.js';
import { onCleanup, REDIS_URL, runCleanups, tempDir, uniqueQueue } from './helpers.js';

after(runCleanups);

const ROOT = join(import.meta.dirname, '..');

function vgenApi(dataDir: string, queue: string): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [join(ROOT, 'bin/vgen.js'), 'api'], {
    env: {
      PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '',
      DATA_DIR: dataDir, REDIS_URL, QUEUE_NAME: queue, PORT: '0', LOG_LEVEL: 'info', JWT_SECRET: randomBytes(32).toString('hex'),
    },
  });
  onCleanup(() => void child.kill('SIGKILL'));
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

test('a second process on a held PGlite dir is refused with one line; a SIGKILLed holder\'s lock is taken over', { timeout: 120_000 }, async () => {
  const dataDir = tempDir();
  const queue = uniqueQueue('lock');
  const first = vgenApi(dataDir, queue);
  for (let i = 0; !/api listening/.test(first.output()); i++) {
    assert.ok(i < 600 && first.child.exitCode === null, `first vgen api did not start: ${first.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  const second = vgenApi(dataDir, queue);
  assert.equal(await second.exited, 1);
  const lines = second.output().split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 1, second.output());
  assert.match(lines[0]!, new RegExp(`^vgen: the PGlite database in .+ is in use by process ${first.child.pid} .*set DATABASE_URL`));

  // This process is refused too, the same way.
  await assert.rejects(openDb({ dataDir }), new RegExp(`in use by process ${first.child.pid}`));

  first.child.kill('SIGKILL');
  await first.exited;
  const db = await openDb({ dataDir });
  const lockFile = join(dataDir, 'pglite', 'vgen.lock');
  try {
    assert.equal(JSON.parse(readFileSync(lockFile, 'utf8')).pid, process.pid);
    const versions = await db.query<{ version: number }>('SELECT version FROM schema_migrations');
    assert.ok(versions.length > 0, 'the database the first process created is intact');
    // One database handle per dir, even within a process.
    await assert.rejects(openDb({ dataDir }), /in use by process/);
  } finally {
    await db.close();
  }
  assert.equal(existsSync(lockFile), false, 'close releases the lock');
  const again = await openDb({ dataDir });
  await again.close();
});

test('a lock whose pid now belongs to another process (pid reuse) is stale', async () => {
  const dataDir = tempDir();
  const { mkdirSync, writeFileSync } = await import('node:fs');
  const { hostname } = await import('node:os');
  mkdirSync(join(dataDir, 'pglite'), { recursive: true });
  // The parent process is alive, but it started at another time than the lock says.
  writeFileSync(join(dataDir, 'pglite', 'vgen.lock'), JSON.stringify({ pid: process.ppid, procStart: '1', host: hostname(), startedAt: '2020-01-01T00:00:00.000Z' }));
  const db = await openDb({ dataDir });
  await db.close();
});
