// ffmpeg and ffprobe die with their worker. Node ignores SIGPIPE and its
// children inherit that, so an ffmpeg whose worker was SIGKILLed (OOM killer,
// `vgen up` giving up after its grace period, a second Ctrl-C) would run on at
// full CPU, reparented to init. Every ffmpeg/ffprobe the worker starts goes
// through worker/bin/ffmpeg (ffprobe is a link to it), which execs
// `setpriv --pdeathsig KILL -- <real tool>`: the kernel SIGKILLs the tool when
// the worker dies. The exec chain keeps the pid, so killing the pid fluent-ffmpeg
// got still kills ffmpeg, and its parent stays the worker. The real binaries are
// still FFMPEG_PATH / FFPROBE_PATH, or ffmpeg / ffprobe from PATH.
//
// PR_SET_PDEATHSIG fires when the parent *thread* exits: spawn only from the
// main thread (libuv spawns on the event-loop thread), never from a worker_thread.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type ffmpegModule from 'fluent-ffmpeg';

export const GUARDED_FFMPEG = fileURLToPath(new URL('./bin/ffmpeg', import.meta.url));
export const GUARDED_FFPROBE = fileURLToPath(new URL('./bin/ffprobe', import.meta.url));

/** Point fluent-ffmpeg (its paths are process-wide) at the guarded tools. */
export function useGuardedTools(ffmpeg: typeof ffmpegModule): void {
  // The wrapper checks that its parent is still this process once the death
  // signal is set; children inherit the environment, so this names the worker.
  // (Written for worker/bin/ffmpeg, never read by vgen: not a setting.)
  Object.assign(process.env, { VGEN_WORKER_PID: String(process.pid) });
  ffmpeg.setFfmpegPath(GUARDED_FFMPEG);
  ffmpeg.setFfprobePath(GUARDED_FFPROBE);
}

/**
 * Run at worker start, after the real tools were found: without setpriv no
 * ffmpeg could start, so the worker refuses to run rather than fail every job.
 */
export async function checkGuard(): Promise<void> {
  try {
    await promisify(execFile)('setpriv', ['--pdeathsig', 'KILL', '--', 'true']);
  } catch {
    throw new Error('setpriv (util-linux) not found or not working: vgen needs it so ffmpeg dies with its worker; install it with `apt-get install util-linux`');
  }
  for (const tool of [GUARDED_FFMPEG, GUARDED_FFPROBE]) {
    try {
      await promisify(execFile)(tool, ['-hide_banner', '-version']);
    } catch (err) {
      throw new Error(`${tool} does not run (${(err as Error).message.split('\n')[0]}); it must be executable (git keeps its mode)`);
    }
  }
}
