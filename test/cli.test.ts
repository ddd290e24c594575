// The `vgen` command as a user runs it: `vgen up` renders the example and
// says where the MP4 is; client commands talk to the API with the token it wrote.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { probe } from '../worker/ffmpeg.js';
import { freePort, onCleanup, runCleanups, tempDir, uniqueQueue } from './helpers.js';

after(runCleanups);
const run = promisify(execFile);
const vgen = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  run(process.execPath, ['bin/vgen.js', ...args], { env: { ...process.env, ...env } }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

test('vgen up renders examples/hello.json, then submit/status work against it, and Ctrl-C stops it', { timeout: 120_000 }, async () => {
  const dataDir = tempDir();
  const port = await freePort();
  const env = { ...process.env, QUEUE_NAME: uniqueQueue('cli'), LOG_LEVEL: 'warn', JWT_SECRET: '', DATABASE_URL: '' };
  const up = spawn(process.execPath, ['bin/vgen.js', 'up', '--port', String(port), '--data-dir', dataDir, '--workers', '1', '--submit', 'examples/hello.json'], { env });
  onCleanup(() => void up.kill('SIGKILL'));
  let out = '';
  up.stdout.on('data', (d) => (out += d));
  up.stderr.on('data', (d) => (out += d));
  await new Promise<void>((resolve, reject) => {
    const check = setInterval(() => {
      if (/Press Ctrl-C/.test(out)) resolve(void clearInterval(check));
      if (up.exitCode !== null) reject(new Error(`vgen up exited: ${out}`));
    }, 100);
  });
  assert.match(out, /vid_\w+ succeeded: http:\/\/127\.0\.0\.1:\d+\/media\/videos\/.+\.mp4/);
  const file = /MP4 on disk: (.+\.mp4)/.exec(out)?.[1];
  assert.ok(file && existsSync(file), out);
  const info = await probe(file);
  assert.deepEqual([info.video?.codec, info.video?.width, info.video?.height, info.audio?.codec], ['h264', 1280, 720, 'aac']);
  assert.ok(Math.abs(info.durationMs - 7500) <= 34, `lasts ${info.durationMs} ms`);

  // Client commands find the API with --api and the token in <data-dir>/token.
  const api = ['--api', `http://127.0.0.1:${port}`, '--data-dir', dataDir];
  const id = /(vid_\w+) succeeded/.exec(out)![1]!;
  const status = await vgen(['status', id, '--json', ...api]);
  assert.equal(status.code, 0, status.stderr);
  assert.equal(JSON.parse(status.stdout).status, 'succeeded');

  const bad = join(dataDir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ version: 1, output: { width: 320, height: 180, fps: 24 }, scenes: [{ duration: -2, background: { color: 'black' } }] }));
  const refused = await vgen(['submit', bad, ...api]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /scenes\[0\]\.duration/);

  const denied = await vgen(['status', id, '--api', `http://127.0.0.1:${port}`, '--token', 'vgk_wrong']);
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /API key is invalid/);

  up.kill('SIGINT');
  const code = await new Promise((resolve) => up.once('exit', resolve));
  assert.equal(code, 0);
});

test('usage errors are one clear line', async () => {
  const unknown = await vgen(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
  const missing = await vgen(['submit']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /usage: vgen submit/);
  const noRedis = await vgen(['up', '--data-dir', tempDir(), '--port', '0'], { REDIS_URL: 'redis://127.0.0.1:1' });
  assert.equal(noRedis.code, 1);
  assert.match(noRedis.stderr, /no Redis answers at redis:\/\/127\.0\.0\.1:1/);
  const noApi = await vgen(['status', 'vid_x', '--api', 'http://127.0.0.1:1', '--token', 't']);
  assert.equal(noApi.code, 1);
  assert.match(noApi.stderr, /cannot reach the vgen API/);
});
