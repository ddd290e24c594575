// The leader lease: several autoscaler replicas may run, exactly one acts.
// The lease is one Redis key holding the leader's random token, taken with
// SET NX PX and kept with a compare-and-extend script every third of its
// lifetime. A standby waits for the key's own expiry (PTTL) and tries again
// then, so it takes over within one lease period of the leader's death. A
// leader that cannot renew stops acting on its own clock, before the key can
// have expired in Redis: it counts its lease from the moment it *sent* the
// renewal, less a margin for clock drift, so two replicas never act at once.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Logger } from '../engine/log.js';

// KEYS[1] lease; ARGV[1] token, ARGV[2] ttl ms. 1 = extended, 0 = not ours.
const EXTEND = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;
// KEYS[1] lease; ARGV[1] token. Deletes it only if it is still ours.
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

export interface LeaseOptions {
  redis: Redis;
  key: string;
  ttlMs: number;
  /** How this replica is named in logs and in the decision it stores; default host-pid. */
  name?: string;
  log?: Logger;
  /** Told when this replica becomes the leader or stops being it. */
  onChange?: (leader: boolean) => void;
}

export class LeaderLease {
  /** Random per process start: a restarted replica never mistakes an old lease for its own. */
  readonly token: string;
  readonly name: string;
  private validUntil = 0; // performance.now() ms before which the lease is surely ours
  private leader = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly renewMs: number;
  private readonly marginMs: number;

  constructor(private readonly opts: LeaseOptions) {
    this.name = opts.name ?? `${hostname()}-${process.pid}`;
    this.token = `${this.name}:${randomBytes(8).toString('hex')}`;
    this.renewMs = Math.max(50, Math.floor(opts.ttlMs / 3));
    this.marginMs = Math.min(1000, Math.floor(opts.ttlMs / 10));
  }

  /** True while the lease is ours by our own clock (checked before every action). */
  isLeader(): boolean {
    if (this.leader && performance.now() >= this.validUntil) this.setLeader(false, 'lease ran out before it could be renewed');
    return this.leader;
  }

  /** Take or extend the lease once; returns whether it is ours, and when to try next. */
  async attempt(): Promise<{ leader: boolean; nextMs: number }> {
    const { redis, key, ttlMs } = this.opts;
    const sentAt = performance.now();
    try {
      const ok = this.leader
        ? (await redis.eval(EXTEND, 1, key, this.token, String(ttlMs))) === 1
        : (await redis.set(key, this.token, 'PX', ttlMs, 'NX')) === 'OK';
      if (ok) {
        this.validUntil = sentAt + ttlMs - this.marginMs;
        this.setLeader(true);
        return { leader: true, nextMs: this.renewMs };
      }
      this.setLeader(false, 'another replica holds the lease');
      // Standing by: try again when the current holder's lease would run out.
      const pttl = await redis.pttl(key);
      return { leader: false, nextMs: pttl > 0 ? Math.min(this.renewMs, pttl + 20) : 20 };
    } catch (err) {
      // Redis unreachable: keep acting only while the last renewal lasts.
      this.opts.log?.warn({ err: (err as Error).message }, 'autoscaler lease: Redis call failed');
      this.isLeader();
      return { leader: this.leader, nextMs: Math.min(this.renewMs, 1000) };
    }
  }

  /** Keep trying (standby) or renewing (leader) until stop(). */
  start(): void {
    this.stopped = false;
    const loop = async () => {
      if (this.stopped) return;
      const { nextMs } = await this.attempt();
      if (!this.stopped) this.timer = setTimeout(loop, nextMs);
    };
    void loop();
  }

  /** Stop renewing; with release (a clean shutdown) hand the lease over at once. Without it, as in a crash, it expires. */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const was = this.leader;
    this.setLeader(false, 'stopped');
    if (opts.release !== false && was) await this.opts.redis.eval(RELEASE, 1, this.opts.key, this.token).catch(() => {});
  }

  private setLeader(leader: boolean, why?: string) {
    if (leader === this.leader) return;
    this.leader = leader;
    if (!leader) this.validUntil = 0;
    this.opts.log?.info({ lease: this.opts.key, replica: this.name, ...(why && { why }) }, leader ? 'autoscaler: this replica is now the leader' : 'autoscaler: no longer the leader');
    this.opts.onChange?.(leader);
  }
}
