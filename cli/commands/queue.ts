// `vgen queue stats [--watch] | pause | resume | retry-failed | clean`: the
// render queue through the API's operator routes (/v1/ops/queue…).
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { VgenError } from '../../engine/errors.js';
import { client, type ClientFlags } from '../commands.js';
import { clientFlags, clientOptions } from '../options.js';
import { humanDuration, parseDuration, table } from './format.js';

export interface QueueStats {
  name: string;
  paused: boolean;
  counts: { waiting: number; prioritized: number; delayed: number; parked: number; active: number; completed: number; failed: number };
  byPriority: { priority: number; waiting: number }[];
  oldestWaitingSeconds: number | null;
  throughput: { completedPerMinute: number; failedPerMinute: number };
  renderSeconds: { mean: number; stddev: number; sample: number } | null;
  at: string;
}

export const queueStats = (flags: ClientFlags) => client(flags).request<QueueStats>('GET', '/v1/ops/queue');

export function formatQueueStats(s: QueueStats): string {
  const c = s.counts;
  return [
    `queue ${s.name}${s.paused ? ' (PAUSED: workers take no new job)' : ''} at ${s.at}`,
    table(['waiting', 'prioritized', 'active', 'delayed', 'parked', 'completed', 'failed'],
      [[c.waiting, c.prioritized, c.active, c.delayed, c.parked, c.completed, c.failed].map(String)]),
    s.byPriority.length > 1 ? `by priority: ${s.byPriority.map((p) => `${p.priority}: ${p.waiting}`).join(', ')}` : '',
    `oldest waiting: ${s.oldestWaitingSeconds === null ? '-' : humanDuration(s.oldestWaitingSeconds)}`,
    `throughput (last 5 min): ${s.throughput.completedPerMinute.toFixed(1)} completed/min, ${s.throughput.failedPerMinute.toFixed(1)} failed/min`,
    `render time: ${s.renderSeconds ? `${s.renderSeconds.mean.toFixed(1)} s mean, ±${s.renderSeconds.stddev.toFixed(1)} s (last ${s.renderSeconds.sample})` : '-'}`,
  ].filter(Boolean).join('\n');
}

const USAGE = 'usage: vgen queue stats [--watch] | pause | resume | retry-failed [--since <duration>] | clean [--older-than <duration>]';

export async function queueCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      ...clientOptions,
      watch: { type: 'boolean' }, interval: { type: 'string' }, since: { type: 'string' }, 'older-than': { type: 'string' },
    },
  });
  if (positionals.length) throw new VgenError('invalid_request', USAGE);
  const flags: ClientFlags = clientFlags(values);
  const api = () => client(flags);
  const print = (data: unknown, human: string) => process.stdout.write(`${values.json ? JSON.stringify(data, null, values.watch ? 0 : 2) : human}\n`);
  switch (sub) {
    case 'stats': {
      const every = values.interval === undefined ? 2 : parseDuration('interval', values.interval);
      for (;;) {
        const s = await queueStats(flags);
        // On a terminal, --watch redraws in place; piped, it appends (one JSON line each with --json).
        if (values.watch && !values.json && process.stdout.isTTY) process.stdout.write('\x1b[H\x1b[2J');
        print(s, formatQueueStats(s));
        if (!values.watch) return 0;
        await sleep(every * 1000);
      }
    }
    case 'pause':
    case 'resume': {
      const r = await api().request<{ paused: boolean }>('POST', `/v1/ops/queue/${sub}`);
      print(r, r.paused ? 'queue paused: workers finish what they hold and take no new job' : 'queue resumed');
      return 0;
    }
    case 'retry-failed': {
      const sinceSeconds = values.since === undefined ? undefined : parseDuration('since', values.since);
      const r = await api().request<{ retried: string[]; skipped: number }>('POST', '/v1/ops/queue/retry-failed', sinceSeconds ? { sinceSeconds } : {});
      print(r, `retried ${r.retried.length} failed render${r.retried.length === 1 ? '' : 's'}${r.skipped ? ` (${r.skipped} skipped: their video is not failed)` : ''}`);
      return 0;
    }
    case 'clean': {
      const olderThanSeconds = values['older-than'] === undefined ? undefined : parseDuration('older-than', values['older-than']);
      const r = await api().request<{ completed: number; failed: number }>('POST', '/v1/ops/queue/clean', olderThanSeconds ? { olderThanSeconds } : {});
      print(r, `removed ${r.completed} completed and ${r.failed} failed jobs${olderThanSeconds ? ` older than ${humanDuration(olderThanSeconds)}` : ' older than 1d'}`);
      return 0;
    }
    default:
      throw new VgenError('invalid_request', USAGE);
  }
}
