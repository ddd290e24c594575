// A circuit breaker for the render queue. A Redis that hangs (SIGSTOP, a
// network black hole) refuses nothing: ioredis keeps status 'ready' and every
// command just waits. Each submit then held a database connection for the
// whole enqueue timeout (3 s), so a hang starved the pool and reads with it.
//
// After one enqueue times out the breaker opens: submits answer 503 at once,
// before any transaction. A PING probes Redis; the first answer closes the
// breaker. On a hung connection a PING cannot time out usefully (a new one
// would queue behind it), so one stays outstanding until it is answered
// (Redis resumed) or fails (the connection dropped); then, within a second,
// the next one goes out.
import type { FastifyBaseLogger } from 'fastify';

export interface QueueBreaker {
  /** True while submits must answer 503 without trying the queue. */
  readonly open: boolean;
  /** An enqueue timed out: open, and start probing. */
  trip(): void;
  close(): void;
}

export function queueBreaker(
  redis: { ping(): Promise<unknown> },
  opts: { log: FastifyBaseLogger; probeIntervalMs?: number },
): QueueBreaker {
  const intervalMs = opts.probeIntervalMs ?? 1_000;
  let open = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: object | undefined;

  const heal = () => {
    if (!open) return;
    open = false;
    clearInterval(timer);
    timer = undefined;
    opts.log.info('the render queue answers again; submits are accepted');
  };
  const probe = () => {
    if (inFlight) return; // still waiting on a hung connection
    const mine = {};
    inFlight = mine;
    redis.ping().then(heal, () => {}).finally(() => {
      if (inFlight === mine) inFlight = undefined;
    });
  };

  return {
    get open() {
      return open;
    },
    trip() {
      if (open) return;
      open = true;
      opts.log.warn('an enqueue timed out: submits answer 503 at once until Redis answers a PING');
      timer = setInterval(probe, intervalMs);
      timer.unref();
      probe();
    },
    close() {
      clearInterval(timer);
      timer = undefined;
    },
  };
}
