// The `vgen` command. Roles: up, api, worker, autoscaler. Client commands:
// submit, status; operator commands: workers, queue (cli/commands/).
// This file only parses arguments; each command is a function in cli/ or a
// role's start function, callable from code and tests the same way.
import { mkdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { startApi } from '../api/server.js';
import { startAutoscaler } from '../autoscaler/main.js';
import { ConfigError, configOrExit } from '../engine/config.js';
import { openDb } from '../engine/db.js';
import { VgenError } from '../engine/errors.js';
import { drainOnSignals, startWorker } from '../worker/main.js';
import { ApiError } from './client.js';
import { cancel, describe, status, submit, type ClientFlags } from './commands.js';
import { clientFlags, clientOptions, dataDir } from './options.js';
import { queueCommand } from './commands/queue.js';
import { workersCommand } from './commands/workers.js';
import { up, writeOperatorToken } from './up.js';

const USAGE = `vgen — video generation engine

Roles (long-running):
  vgen up [--port P] [--data-dir D] [--workers N] [--submit spec.json]
          [--min-workers N] [--max-workers M] [--scale-in-after SECONDS]
                      API + autoscaler + local workers on this machine: N of them
                      (default 2), or between N and M sized from queue depth
  vgen autoscaler     the autoscaler alone (AUTOSCALER_PROVIDER=local|ec2|none)
  vgen api            the API alone (configure with environment variables)
  vgen worker         one render worker alone
  vgen operator-token [--data-dir D]
                      writes an operator API key to <data-dir>/token (DATABASE_URL's
                      database; keeps a still-valid one): for Prometheus and scripts

Client commands (talk to the API):
  vgen submit <spec.json> [--wait] [--json] [--private] [--idempotency-key K]
  vgen status <id> [--json]
  vgen cancel <id> [--json]   (yours; an operator token cancels anyone's)
Operator commands (an operator token; each takes --json):
  vgen workers ls | scale <n> [--for 1h] | drain <id>… | --idle | --all [--deadline 100s]
  vgen queue stats [--watch] | pause | resume | retry-failed [--since 1d] | clean [--older-than 1d]
  common: --api URL (default $VGEN_API or http://127.0.0.1:3000)
          --token T (default $VGEN_TOKEN or <data-dir>/token)

Configuration: see .env.example.`;

/** Run until SIGINT/SIGTERM, then stop cleanly; a second signal forces the exit. */
function untilSignal(stop: () => Promise<void>) {
  let stopping = false;
  const onSignal = async () => {
    if (stopping) process.exit(130);
    stopping = true;
    process.stderr.write('\nvgen: stopping…\n');
    await stop();
    process.exit(0);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'up': {
      const { values } = parseArgs({
        args: rest,
        options: {
          port: { type: 'string' }, 'data-dir': { type: 'string' }, workers: { type: 'string' }, submit: { type: 'string' },
          'min-workers': { type: 'string' }, 'max-workers': { type: 'string' }, 'scale-in-after': { type: 'string' },
        },
      });
      const count = (flag: string, raw: string | undefined, fallback: number, max = 64) => {
        const n = Number(raw ?? fallback);
        if (!Number.isInteger(n) || n < 0 || n > max) throw new VgenError('invalid_request', `--${flag} must be a whole number from 0 to ${max}`);
        return n;
      };
      // --workers N is a fixed pool (min = max = N); --min-workers/--max-workers let the autoscaler size it.
      const autoscaled = values['min-workers'] !== undefined || values['max-workers'] !== undefined;
      if (autoscaled && values.workers !== undefined) throw new VgenError('invalid_request', 'give either --workers or --min-workers/--max-workers, not both');
      const minWorkers = count('min-workers', values['min-workers'] ?? values.workers, autoscaled ? 0 : 2);
      const maxWorkers = count('max-workers', values['max-workers'] ?? values.workers, autoscaled ? Math.max(minWorkers, 4) : 2);
      if (maxWorkers < minWorkers) throw new VgenError('invalid_request', '--max-workers must be at least --min-workers');
      const scaleInSeconds = values['scale-in-after'] === undefined ? undefined : count('scale-in-after', values['scale-in-after'], 0, 86_400);
      const port = values.port === undefined ? undefined : Number(values.port);
      if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port < 65536)) throw new VgenError('invalid_request', '--port must be a port number');
      const dir = dataDir(values['data-dir']);
      const system = await up({ port, dataDir: dir, minWorkers, maxWorkers, scaleInSeconds });
      const workers = minWorkers === maxWorkers ? `${minWorkers} workers` : `${minWorkers}–${maxWorkers} workers (autoscaled)`;
      untilSignal(system.stop);
      const where = relative(process.cwd(), dir) || '.';
      process.stdout.write(`vgen is up: API ${system.api.url} (docs at ${system.api.url}/docs), ${workers}, data in ${where}/\n`);
      process.stdout.write(`operator token written to ${join(where, 'token')}\n`);
      if (values.submit) {
        const video = await submit(values.submit, { api: system.api.url, token: system.token, wait: true });
        process.stdout.write(`${describe(video)}\n`);
        if (video.status === 'succeeded' && video.output && system.config.storage.driver === 'fs') {
          const key = new URL(video.output.url).pathname.replace(/^\/media\//, '');
          process.stdout.write(`MP4 on disk: ${relative(process.cwd(), join(system.config.storage.mediaDir, key))}\n`);
        }
      }
      process.stdout.write('Press Ctrl-C to stop.\n');
      return -1; // keep running
    }
    case 'autoscaler': {
      const a = await startAutoscaler(configOrExit());
      untilSignal(() => a.close());
      return -1;
    }
    case 'api': {
      const api = await startApi(configOrExit());
      untilSignal(api.close);
      return -1;
    }
    case 'worker': {
      // Runs until drained (SIGTERM/SIGINT, `vgen workers drain`, a spot notice), then exits 0.
      const config = configOrExit();
      const w = await startWorker(config);
      drainOnSignals(w, config.worker.drainDeadlineSeconds);
      await w.drained;
      return 0;
    }
    case 'operator-token': {
      // The split layout's way to an operator key (`vgen up` writes one itself): docker-compose's
      // Prometheus reads it for GET /v1/ops/prometheus-targets. Same rules as `vgen up`'s token file.
      const { values } = parseArgs({ args: rest, options: { 'data-dir': { type: 'string' } } });
      const config = configOrExit();
      const dir = dataDir(values['data-dir']);
      mkdirSync(dir, { recursive: true });
      const db = await openDb({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
      try {
        await writeOperatorToken(db, dir);
      } finally {
        await db.close();
      }
      process.stdout.write(`operator token written to ${join(dir, 'token')}\n`);
      return 0;
    }
    case 'submit':
    case 'status':
    case 'cancel': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { ...clientOptions, wait: { type: 'boolean' }, private: { type: 'boolean' }, 'idempotency-key': { type: 'string' } },
      });
      const arg = positionals[0];
      if (!arg) throw new VgenError('invalid_request', command === 'submit' ? 'usage: vgen submit <spec.json> [--wait] [--json]' : `usage: vgen ${command} <id> [--json]`);
      const flags: ClientFlags = clientFlags(values);
      const video = command === 'submit'
        ? await submit(arg, { ...flags, wait: values.wait, private: values.private, idempotencyKey: values['idempotency-key'] })
        : command === 'cancel' ? await cancel(arg, flags) : await status(arg, flags);
      process.stdout.write(values.json ? `${JSON.stringify(video, null, 2)}\n` : `${describe(video)}\n`);
      return video.status === 'failed' ? 1 : 0;
    }
    case 'workers':
      return workersCommand(rest);
    case 'queue':
      return queueCommand(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return 0;
    default:
      process.stderr.write(`vgen: unknown command "${command}"\n\n${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err) => {
    if (err instanceof ConfigError) process.stderr.write(`vgen: configuration error: ${err.message}\n`);
    else if (err instanceof VgenError || err instanceof ApiError) process.stderr.write(`vgen: ${err.message}${err.field ? ` (${err.field})` : ''}\n`);
    else if ((err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') process.stderr.write(`vgen: ${(err as Error).message}\n`);
    else process.stderr.write(`vgen: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
