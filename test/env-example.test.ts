// Every environment variable the code reads is documented in .env.example,
// every documented default is the real default, and a bad value stops the
// process with one line naming the variable.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../engine/config.js';

const ROOT = join(import.meta.dirname, '..');
const CODE_DIRS = ['engine', 'api', 'worker', 'cli', 'autoscaler'];
// Read by the AWS SDK's default credential chain, not by our code.
const READ_BY_SDK = new Set(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']);

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
    .map((f) => join(ROOT, dir, f));
}

const CONFIG_READ = /\b(?:read|int|url|oneOf|bool|oneOfPattern)\(env, '([A-Z][A-Z0-9_]*)'/g;
const PROCESS_ENV = /process\.env(?:\.([A-Z][A-Z0-9_]*)|\[\s*'([A-Z][A-Z0-9_]*)'\s*\])/g;

/** Variable name → files that read it. */
function variablesRead(files: string[]): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const re of [CONFIG_READ, PROCESS_ENV]) {
      for (const m of text.matchAll(re)) {
        const name = (m[1] ?? m[2])!;
        found.set(name, [...(found.get(name) ?? []), file.slice(ROOT.length + 1)]);
      }
    }
  }
  return found;
}

/** `NAME=value` (a default) and `# NAME=` (optional) lines. */
function documented(): Map<string, { value: string; commented: boolean }> {
  const out = new Map<string, { value: string; commented: boolean }>();
  for (const line of readFileSync(join(ROOT, '.env.example'), 'utf8').split('\n')) {
    const m = /^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m) out.set(m[2]!, { value: m[3]!, commented: m[1] !== undefined });
  }
  return out;
}

const codeVars = variablesRead(CODE_DIRS.flatMap(sourceFiles));
const configVars = variablesRead([join(ROOT, 'engine/config.ts')]);
const docs = documented();

describe('.env.example', () => {
  test('the scan finds the variables it should (the patterns still match the code)', () => {
    for (const name of ['REDIS_URL', 'PORT', 'JWT_SECRET', 'S3_FORCE_PATH_STYLE', 'QUEUE_NAME', 'TRUST_PROXY', 'VGEN_TOKEN'])
      assert.ok(codeVars.has(name), `expected the scan to find ${name}`);
  });

  test('documents every variable the code reads', () => {
    const missing = [...codeVars].filter(([name]) => !docs.has(name)).map(([name, files]) => `${name} (${[...new Set(files)].join(', ')})`);
    assert.deepEqual(missing, [], `undocumented: ${missing.join('; ')}`);
  });

  test('documents nothing the code does not read', () => {
    // Tests and benchmarks read a few of their own (seeds, the test database).
    const testVars = variablesRead(['test', 'bench'].flatMap((dir) =>
      readdirSync(join(ROOT, dir), { encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => join(ROOT, dir, f))));
    const extra = [...docs.keys()].filter((n) => !codeVars.has(n) && !testVars.has(n) && !READ_BY_SDK.has(n));
    assert.deepEqual(extra, []);
  });

  test('every NAME=default line for a config variable is the real default', () => {
    const base = loadConfig({});
    for (const [name, { value, commented }] of docs) {
      if (commented || !configVars.has(name)) continue;
      assert.deepEqual(loadConfig({ [name]: value }), base, `${name}=${value} in .env.example is not the default`);
    }
  });
});

describe('loadConfig rejects bad values, naming the variable first', () => {
  const cases: [Record<string, string>, string][] = [
    [{ PORT: 'abc' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ REDIS_URL: 'http://x' }, 'REDIS_URL'],
    [{ REDIS_URL: 'not a url' }, 'REDIS_URL'],
    [{ STORAGE: 's3' }, 'S3_BUCKET'],
    [{ STORAGE: 'gcs' }, 'STORAGE'],
    [{ S3_BUCKET: 'b' }, 'CDN_BASE_URL'],
    [{ JWT_SECRET: 'too-short' }, 'JWT_SECRET'],
    [{ WORKER_CONCURRENCY: '0' }, 'WORKER_CONCURRENCY'],
    [{ WORKER_CONCURRENCY: '1.5' }, 'WORKER_CONCURRENCY'],
    [{ DATABASE_URL: 'mysql://db/vgen' }, 'DATABASE_URL'],
    [{ QUEUE_NAME: 'Render Queue' }, 'QUEUE_NAME'],
    [{ S3_FORCE_PATH_STYLE: 'maybe' }, 'S3_FORCE_PATH_STYLE'],
    [{ X264_PRESET: 'placebo' }, 'X264_PRESET'],
    [{ LOG_LEVEL: 'verbose' }, 'LOG_LEVEL'],
  ];
  for (const [env, variable] of cases) {
    test(`${JSON.stringify(env)} → ${variable}`, () => {
      assert.throws(
        () => loadConfig(env),
        (err: unknown) => err instanceof ConfigError && err.variable === variable && err.message.startsWith(`${variable} `),
      );
    });
  }

  test('a valid s3 setup loads', () => {
    const c = loadConfig({ S3_BUCKET: 'media', CDN_BASE_URL: 'https://cdn.example.com/', S3_FORCE_PATH_STYLE: 'yes' });
    assert.equal(c.storage.driver, 's3');
    assert.equal(c.storage.cdnBaseUrl, 'https://cdn.example.com');
    assert.equal(c.storage.s3.forcePathStyle, true);
  });
});

test('`vgen api` with PORT=abc exits 1 with one stderr line naming PORT', () => {
  const res = spawnSync(process.execPath, [join(ROOT, 'bin/vgen.js'), 'api'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', PORT: 'abc' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(res.status, 1, `exit status ${res.status}, stderr: ${res.stderr}`);
  const lines = res.stderr.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 1, `stderr: ${res.stderr}`);
  assert.match(lines[0]!, /^vgen: configuration error: PORT /);
  assert.equal(res.stdout, '');
});
