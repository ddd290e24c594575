// The local provider: render workers as `vgen worker` child processes on this
// machine, behind the same interface as the EC2 one. Each child gets its
// WORKER_ID from here, so the worker registry and the provider name it alike.
// The autoscaler retires a worker by asking it to drain through the registry;
// the worker finishes its job and exits by itself, and leaves list() when it
// does. terminate() sends SIGTERM, which a worker also treats as a drain, so
// even a mistaken call never cuts a render short. A child that crashes is not
// restarted here: it leaves list(), and the next decision replaces it.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { LaunchResult, ProviderInstance, TerminateResult, WorkerProvider } from './types.js';

const VGEN_BIN = fileURLToPath(new URL('../../bin/vgen.js', import.meta.url));

export interface LocalProviderOptions {
  env: NodeJS.ProcessEnv;
  /** Told when a worker exits (on its own after a drain, or by a crash). */
  onExit?: (id: string, code: number | null, signal: NodeJS.Signals | null) => void;
  /** Worker ids are `<prefix>-<random>`; default `local`. */
  idPrefix?: string;
}

interface Child {
  id: string;
  process: ChildProcess;
  launchedAt: Date;
  terminating: boolean;
}

export class LocalProvider implements WorkerProvider {
  readonly name = 'local';
  private readonly children = new Map<string, Child>();

  constructor(private readonly opts: LocalProviderOptions) {}

  async launch(count: number): Promise<LaunchResult> {
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`launch count must be a whole number ≥ 0, got ${count}`);
    const instances: ProviderInstance[] = [];
    for (let i = 0; i < count; i++) instances.push(toInstance(this.spawnOne()));
    return { requested: count, instances, shortfall: 0, errors: [] };
  }

  async terminate(drainedIds: readonly string[]): Promise<TerminateResult> {
    const terminated: string[] = [];
    const refused: string[] = [];
    for (const id of new Set(drainedIds)) {
      const child = this.children.get(id);
      if (!child) {
        refused.push(id);
        continue;
      }
      child.terminating = true;
      child.process.kill('SIGTERM');
      terminated.push(id);
    }
    return { terminated, refused };
  }

  async list(): Promise<ProviderInstance[]> {
    return [...this.children.values()].map(toInstance);
  }

  /** Worker processes alive now. */
  pids(): number[] {
    return [...this.children.values()].map((c) => c.process.pid!).filter(Boolean);
  }

  get size(): number {
    return this.children.size;
  }

  /** SIGTERM every worker (each drains) and wait for all to exit; SIGKILL after graceMs. */
  async stopAll(graceMs = 30_000): Promise<void> {
    await Promise.all([...this.children.values()].map(({ process: child }) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill('SIGTERM');
    })));
  }

  private spawnOne(): Child {
    const id = `${this.opts.idPrefix ?? 'local'}-${randomBytes(4).toString('hex')}`;
    // setpriv --pdeathsig TERM: if `vgen up` dies without stopping its
    // workers (SIGKILL, OOM), the kernel sends each one SIGTERM, which drains
    // it: its job finishes or goes back to the queue, and nothing is orphaned.
    const proc = spawn('setpriv', ['--pdeathsig', 'TERM', '--', process.execPath, VGEN_BIN, 'worker'], {
      env: { ...this.opts.env, WORKER_ID: id, WORKER_PROVIDER: 'local' },
      stdio: ['ignore', 'inherit', 'inherit'],
      // A process group of its own: Ctrl-C on a terminal (SIGINT to the whole
      // foreground group) reaches only `vgen up`, which then drains each worker
      // once. A worker that also got the terminal's signal would take
      // stopAll()'s SIGTERM as a second signal and exit at once, mid-render.
      detached: true,
    });
    const child: Child = { id, process: proc, launchedAt: new Date(), terminating: false };
    this.children.set(id, child);
    proc.once('exit', (code, signal) => {
      this.children.delete(id);
      this.opts.onExit?.(id, code, signal);
    });
    // A spawn failure (no node binary?) arrives as 'error' and no 'exit'.
    proc.once('error', () => {
      if (this.children.delete(id)) this.opts.onExit?.(id, null, null);
    });
    return child;
  }
}

function toInstance(c: Child): ProviderInstance {
  return { id: c.id, state: c.terminating ? 'stopping' : 'running', lifecycle: 'on-demand', instanceType: 'local', launchedAt: c.launchedAt };
}
