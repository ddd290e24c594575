// The `vgen` command. Roles: up, api, worker. Client commands: submit, status.
// This file only parses arguments; each command is a function in cli/ or a
// role's start function, callable from code and tests the same way.
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { startApi } from '../api/server.js';
import { ConfigError, configOrExit } from '../engine/config.js';
import { VgenError } from '../engine/errors.js';
import { startWorker } from '../worker/main.js';
import { ApiError } from './client.js';
import { describe, status, submit, type ClientFlags } from './commands.js';
import { apiToken, apiUrl, dataDir } from './options.js';
import { up } from './up.js';

const USAGE = `vgen — video generation engine

Roles (long-running):
  vgen up [--port P] [--data-dir D] [--workers N] [--submit spec.json]
                      API + N local workers on this machine (default 2 workers)
  vgen api            the API alone (configure with environment variables)
  vgen worker         one render worker alone

Client commands (talk to the API):
  vgen submit <spec.json> [--wait] [--json] [--private] [--idempotency-key K]
  vgen status <id> [--json]
  common: --api URL (default $VGEN_API or http://127.0.0.1:3000)
          --token T (default $VGEN_TOKEN or <data-dir>/token)

Configuration: see .env.example.`;

const clientOptions = {
  api: { type: 'string' },
  token: { type: 'string' },
  'data-dir': { type: 'string' },
  json: { type: 'boolean' },
} as const;

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
        options: { port: { type: 'string' }, 'data-dir': { type: 'string' }, workers: { type: 'string' }, submit: { type: 'string' } },
      });
      const workers = Number(values.workers ?? 2);
      if (!Number.isInteger(workers) || workers < 0 || workers > 64) throw new VgenError('invalid_request', '--workers must be a whole number from 0 to 64');
      const port = values.port === undefined ? undefined : Number(values.port);
      if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port < 65536)) throw new VgenError('invalid_request', '--port must be a port number');
      const dir = dataDir(values['data-dir']);
      const system = await up({ port, dataDir: dir, workers });
      untilSignal(system.stop);
      const where = relative(process.cwd(), dir) || '.';
      process.stdout.write(`vgen is up: API ${system.api.url} (docs at ${system.api.url}/docs), ${workers} workers, data in ${where}/\n`);
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
    case 'api': {
      const api = await startApi(configOrExit());
      untilSignal(api.close);
      return -1;
    }
    case 'worker': {
      const w = await startWorker(configOrExit());
      untilSignal(w.close);
      return -1;
    }
    case 'submit':
    case 'status': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { ...clientOptions, wait: { type: 'boolean' }, private: { type: 'boolean' }, 'idempotency-key': { type: 'string' } },
      });
      const arg = positionals[0];
      if (!arg) throw new VgenError('invalid_request', command === 'submit' ? 'usage: vgen submit <spec.json> [--wait] [--json]' : 'usage: vgen status <id> [--json]');
      const flags: ClientFlags = { api: apiUrl(values.api), token: apiToken(values.token, values['data-dir']), json: values.json };
      const video = command === 'submit'
        ? await submit(arg, { ...flags, wait: values.wait, private: values.private, idempotencyKey: values['idempotency-key'] })
        : await status(arg, flags);
      process.stdout.write(values.json ? `${JSON.stringify(video, null, 2)}\n` : `${describe(video)}\n`);
      return video.status === 'failed' ? 1 : 0;
    }
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
