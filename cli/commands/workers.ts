// `vgen workers ls | scale | drain`: the fleet through the API's operator
// routes (/v1/ops/workers…), with an operator token like every client command.
import { parseArgs } from 'node:util';
import type { ScalingSnapshot } from '../../autoscaler/state.js';
import { VgenError } from '../../engine/errors.js';
import { ApiError } from '../client.js';
import { client, type ClientFlags } from '../commands.js';
import { clientFlags, clientOptions } from '../options.js';
import { humanDuration, parseDuration, since, table } from './format.js';

interface Worker {
  id: string; provider: string; host: string; pid: number; version: string; state: string; currentJob?: string;
  jobsDone: number; startedAt: string; lastHeartbeat: string; drain?: { requestedAt: string; deadline?: string };
}
interface Floor { manualFloor: { workers: number; until: string } | null }
export interface WorkersList extends Floor {
  workers: Worker[];
  /** The autoscaler's latest decision, or null when none is running. */
  scaling: ScalingSnapshot | null;
}

export async function listWorkers(flags: ClientFlags): Promise<WorkersList> {
  const api = client(flags);
  const [list, scaling] = await Promise.all([
    api.request<Omit<WorkersList, 'scaling'>>('GET', '/v1/ops/workers'),
    api.request<ScalingSnapshot>('GET', '/v1/ops/scaling').catch((err: unknown) => {
      if (err instanceof ApiError && err.status === 503) return null;
      throw err;
    }),
  ]);
  return { ...list, scaling };
}

export function formatWorkers(l: WorkersList, now = Date.now()): string {
  const rows = l.workers.map((w) => [
    w.id, w.drain ? 'draining' : w.state, w.currentJob ?? '-', String(w.jobsDone), since(w.startedAt, now), `${since(w.lastHeartbeat, now)} ago`,
    w.provider, `${w.host}:${w.pid}`,
  ]);
  const out = [l.workers.length ? table(['id', 'state', 'job', 'done', 'up', 'heartbeat', 'provider', 'host'], rows) : 'no workers registered'];
  const s = l.scaling;
  if (s) out.push(`autoscaler (${s.provider}, ${s.min}–${s.max}): wants ${s.desiredWorkers} (${s.reason}); ${s.running} running, ${s.booting} booting, ${s.draining} draining`);
  else out.push('autoscaler: no recent decision (none running on this queue)');
  if (l.manualFloor) out.push(`manual floor: at least ${l.manualFloor.workers} until ${l.manualFloor.until} (${humanDuration((Date.parse(l.manualFloor.until) - now) / 1000)} left)`);
  return out.join('\n');
}

export async function scaleWorkers(workers: number, forSeconds: number, flags: ClientFlags): Promise<Floor> {
  return client(flags).request<Floor>('POST', '/v1/ops/workers/scale', { workers, forSeconds });
}

export type DrainTarget = { ids: string[] } | { idle: true } | { all: true };

export async function drainWorkers(target: DrainTarget, deadlineSeconds: number | undefined, flags: ClientFlags): Promise<{ draining: string[]; notFound: string[] }> {
  return client(flags).request('POST', '/v1/ops/workers/drain', { ...target, ...(deadlineSeconds !== undefined && { deadlineSeconds }) });
}

const USAGE = 'usage: vgen workers ls | scale <n> [--for <duration>] | drain <id>… | --idle | --all [--deadline <seconds>]';

export async function workersCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      ...clientOptions,
      for: { type: 'string' }, idle: { type: 'boolean' }, all: { type: 'boolean' }, deadline: { type: 'string' },
    },
  });
  const flags: ClientFlags = clientFlags(values);
  const print = (data: unknown, human: string) => process.stdout.write(`${values.json ? JSON.stringify(data, null, 2) : human}\n`);
  switch (sub) {
    case 'ls':
    case 'list': {
      const l = await listWorkers(flags);
      print(l, formatWorkers(l));
      return 0;
    }
    case 'scale': {
      const n = Number(positionals[0]);
      if (positionals.length !== 1 || !Number.isInteger(n) || n < 0) throw new VgenError('invalid_request', 'usage: vgen workers scale <n> [--for <duration>] (n ≥ 0; 0 clears the floor)');
      const forSeconds = values.for === undefined ? 3600 : parseDuration('for', values.for);
      const r = await scaleWorkers(n, forSeconds, flags);
      print(r, r.manualFloor
        ? `at least ${r.manualFloor.workers} workers until ${r.manualFloor.until} (${humanDuration(forSeconds)}); the autoscaler's max still applies`
        : 'manual floor cleared');
      return 0;
    }
    case 'drain': {
      const chosen = [positionals.length > 0, !!values.idle, !!values.all].filter(Boolean).length;
      if (chosen !== 1) throw new VgenError('invalid_request', 'usage: vgen workers drain <id>… | --idle | --all [--deadline <seconds>]');
      const target: DrainTarget = values.idle ? { idle: true } : values.all ? { all: true } : { ids: positionals };
      const deadline = values.deadline === undefined ? undefined : parseDuration('deadline', values.deadline);
      const r = await drainWorkers(target, deadline, flags);
      const lines = [r.draining.length ? `draining ${r.draining.length}: ${r.draining.join(' ')}` : 'no worker to drain'];
      if (r.notFound.length) lines.push(`not found (not registered or already gone): ${r.notFound.join(' ')}`);
      print(r, lines.join('\n'));
      return r.notFound.length && !r.draining.length ? 1 : 0;
    }
    default:
      throw new VgenError('invalid_request', USAGE);
  }
}
