// The local provider: render workers as child processes on this machine.
// `vgen up` uses it with a fixed count; the autoscaler (a later issue) sizes
// it from queue depth through the same scaleTo().
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const VGEN_BIN = fileURLToPath(new URL('../bin/vgen.js', import.meta.url));

export interface LocalPoolOptions {
  env: NodeJS.ProcessEnv;
  /** Called when a worker exits on its own (it is then replaced). */
  onExit?: (pid: number | undefined, code: number | null, signal: NodeJS.Signals | null) => void;
}

export class LocalWorkerPool {
  private readonly children = new Set<ChildProcess>();
  private desired = 0;
  private stopping = false;

  constructor(private readonly opts: LocalPoolOptions) {}

  get size(): number {
    return this.children.size;
  }

  pids(): number[] {
    return [...this.children].map((c) => c.pid!).filter(Boolean);
  }

  scaleTo(n: number): void {
    this.desired = n;
    while (this.children.size < n) this.spawnOne();
    // Retire the newest first; SIGTERM makes a worker finish its job, then exit.
    for (const child of [...this.children].reverse().slice(0, Math.max(0, this.children.size - n))) {
      this.children.delete(child);
      child.kill('SIGTERM');
    }
  }

  private spawnOne(): void {
    const child = spawn(process.execPath, [VGEN_BIN, 'worker'], { env: this.opts.env, stdio: ['ignore', 'inherit', 'inherit'] });
    this.children.add(child);
    child.once('exit', (code, signal) => {
      if (!this.children.delete(child)) return; // retired on purpose
      this.opts.onExit?.(child.pid, code, signal);
      // Replace a crashed worker, after a pause so a crash loop cannot spin.
      if (!this.stopping) setTimeout(() => !this.stopping && this.children.size < this.desired && this.spawnOne(), 1000).unref();
    });
  }

  /** SIGTERM every worker and wait for all to exit (SIGKILL after graceMs). */
  async stopAll(graceMs = 30_000): Promise<void> {
    this.stopping = true;
    const all = [...this.children];
    this.children.clear();
    await Promise.all(all.map((child) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill('SIGTERM');
    })));
  }
}
