// ffmpeg dies with its worker, and a worker starting after one that died
// removes the work folder it left (worker/ffmpeg-guard.ts, worker/work-dir.ts).
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalProvider } from '../autoscaler/providers/local.js';
import type { RenderSpec } from '../engine/spec.js';
import { GUARDED_FFMPEG } from '../worker/ffmpeg-guard.js';
import { onCleanup, openQueue, runCleanups, smallSpec, tempDir, testEnv, uniqueQueue } from './helpers.js';

after(runCleanups);

// Long enough (60 s of 1280x720, preset medium: 20 s or more of ffmpeg here)
// that ffmpeg surely still runs when we look for it; it is killed long before it ends.
const longSpec = smallSpec({
  output: { width: 1280, height: 720, fps: 30 },
  scenes: [
    { duration: 30, background: { image: 'assets/photo.jpg' }, caption: { text: 'one' } },
    { duration: 30.5, background: { image: 'assets/photo2.jpg' }, caption: { text: '二' }, transition: { type: 'dissolve', duration: 0.5 } },
  ],
}) as RenderSpec;

/** Processes (other than this one) whose command line mentions text: ffmpeg runs name the job's work folder. */
function processesMentioning(text: string): { pid: number; argv: string[] }[] {
  const found = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // exited meanwhile
    }
    if (argv.some((a) => a.includes(text))) found.push({ pid, argv });
  }
  return found;
}

const ffmpegOf = (videoId: string) => processesMentioning(videoId).filter((p) => /(^|\/)ffmpeg$/.test(p.argv[0]!));

async function until<T>(what: string, fn: () => T | undefined | false, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** A job enqueued straight onto the test's queue (the API plays no part here). */
async function submit(env: Record<string, string>): Promise<string> {
  const videoId = `vid_${randomBytes(8).toString('hex')}`;
  // Whatever happens, leave no ffmpeg of this job running (without the fix, one would be).
  onCleanup(() => {
    for (const { pid } of processesMentioning(videoId)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
  });
  await openQueue(env).add('render', { videoId, spec: longSpec }, { jobId: videoId });
  return videoId;
}

function startWorker(env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, ['bin/vgen.js', 'worker'], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  onCleanup(() => void child.kill('SIGKILL'));
  return child;
}

test('a SIGKILLed worker takes its ffmpeg with it; the next worker removes its work folder', { timeout: 90_000 }, async () => {
  const workDir = tempDir();
  const env = await testEnv({ WORK_DIR: workDir, X264_PRESET: 'medium' });
  const first = startWorker(env);
  const videoId = await submit(env);
  const [ffmpeg] = await until('ffmpeg rendering the job', () => ffmpegOf(videoId).length > 0 && ffmpegOf(videoId), 60_000);
  const folders = readdirSync(workDir).filter((f) => f.includes(videoId));
  assert.equal(folders.length, 1);
  assert.ok(ffmpeg!.argv.some((a) => a.includes(folders[0]!)), 'ffmpeg works in the job folder');

  const exited = new Promise((resolve) => first.once('exit', resolve));
  first.kill('SIGKILL');
  await exited;
  const t0 = Date.now();
  await until('no ffmpeg of the job', () => ffmpegOf(videoId).length === 0, 2_000)
    .catch(() => assert.fail(`ffmpeg outlived its worker: ${JSON.stringify(processesMentioning(videoId))}`));
  assert.deepEqual(processesMentioning(videoId), [], 'nothing of the job runs on');
  assert.ok(Date.now() - t0 <= 2_000);
  assert.deepEqual(readdirSync(workDir), folders, 'the dead worker left its folder');

  // The next worker (on another, empty queue: only its start matters here) sweeps it.
  startWorker({ ...env, QUEUE_NAME: uniqueQueue('t') });
  await until('the stale folder removed', () => !readdirSync(workDir).includes(folders[0]!), 30_000);
  assert.deepEqual(readdirSync(workDir), []);
});

test('vgen up gives up on a rendering worker after its grace period: no ffmpeg outlives it', { timeout: 90_000 }, async () => {
  const env = await testEnv({ WORK_DIR: tempDir(), X264_PRESET: 'medium' });
  const pool = new LocalProvider({ env: { ...process.env, ...env } });
  onCleanup(() => pool.stopAll(0));
  await pool.launch(1);
  const [worker] = pool.pids();
  const videoId = await submit(env);
  await until('ffmpeg rendering the job', () => ffmpegOf(videoId).length > 0, 60_000);

  // SIGTERM lets the worker drain: it is still rendering when the grace period ends.
  await pool.stopAll(300);
  assert.equal(pool.size, 0);
  assert.throws(() => process.kill(worker!, 0), 'the worker is gone');
  await until('no ffmpeg of the job', () => ffmpegOf(videoId).length === 0, 2_000)
    .catch(() => assert.fail(`ffmpeg outlived its worker: ${JSON.stringify(processesMentioning(videoId))}`));
});

test('without setpriv the worker refuses to start, saying what to install', async () => {
  const env = await testEnv();
  // PATH without setpriv; the real tools are still found through FFMPEG_PATH / FFPROBE_PATH.
  const noSetpriv = { ...process.env, ...env, PATH: tempDir(), FFMPEG_PATH: '/usr/bin/ffmpeg', FFPROBE_PATH: '/usr/bin/ffprobe' };
  const worker = spawnSync(process.execPath, ['bin/vgen.js', 'worker'], { env: noSetpriv, encoding: 'utf8', timeout: 30_000 });
  assert.equal(worker.status, 1);
  assert.match(worker.stderr, /setpriv \(util-linux\) not found.*apt-get install util-linux/);
  // The wrapper itself says the same rather than running ffmpeg unguarded.
  const tool = spawnSync(GUARDED_FFMPEG, ['-version'], { env: noSetpriv, encoding: 'utf8' });
  assert.equal(tool.status, 127);
  assert.match(tool.stderr, /setpriv not found/);
});

test('a SIGKILLed `vgen up` takes its workers with it: each drains and exits', { timeout: 90_000 }, async () => {
  const env = await testEnv({ WORK_DIR: tempDir() });
  const up = spawn(process.execPath, ['bin/vgen.js', 'up', '--port', '0', '--data-dir', env.DATA_DIR!, '--workers', '2'],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  onCleanup(() => void up.kill('SIGKILL'));
  const workersOf = (pid: number) => processesMentioning('worker').filter(({ pid: p }) => {
    try {
      return readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ')[1] === String(pid);
    } catch {
      return false;
    }
  });
  const workers = await until('two workers started', () => workersOf(up.pid!).length === 2 && workersOf(up.pid!), 60_000);
  onCleanup(() => workers.forEach(({ pid }) => { try { process.kill(pid, 'SIGKILL'); } catch {} }));
  up.kill('SIGKILL');
  // Idle workers drain at once on the SIGTERM their parent's death sends them.
  await until('the workers gone', () => workers.every(({ pid }) => { try { process.kill(pid, 0); return false; } catch { return true; } }), 30_000)
    .catch(() => assert.fail(`workers outlived vgen up: ${JSON.stringify(workers)}`));
});
