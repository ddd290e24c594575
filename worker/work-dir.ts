// Per-job work folders carry their owner in their name, so a worker starting
// up can remove the folders of workers that died without cleaning up (SIGKILL,
// OOM, power loss) while never touching a live worker's folder: several
// workers share one temp dir under `vgen up`, and WORK_DIR may be a mount
// shared by several hosts.
//
//   vgen-<host>.<boot>.<pid>.<start>-<video id>-XXXXXX
//
// host: hash of the hostname (another host's folders are never touched);
// boot: hash of the kernel's boot id (a folder from an earlier boot of this
// host is stale); pid and start: the owner's pid and its start time in clock
// ticks since boot (/proc/<pid>/stat field 22), which tells a reused pid apart.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';

export interface Owner {
  host: string;
  boot: string;
  pid: number;
  /** Start time in clock ticks since boot; '' where /proc is not available. */
  start: string;
}

const NAME = /^vgen-([0-9a-f]{8})\.([0-9a-f]{8})\.(\d+)\.(\d*)-/;
const hash8 = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 8);

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return fallback;
  }
}

/** State and start time of a process from /proc/<pid>/stat, or undefined if there is none. */
export function procStat(pid: number): { state: string; start: string } | undefined {
  const stat = readOr(`/proc/${pid}/stat`, '');
  // Field 2 (the command name) is in parentheses and may hold spaces and ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields.length < 20) return undefined;
  return { state: fields[0]!, start: fields[19]! };
}

let self: Owner | undefined;
/** This process as a work folder owner. */
export function currentOwner(): Owner {
  self ??= {
    host: hash8(hostname()),
    boot: hash8(readOr('/proc/sys/kernel/random/boot_id', 'unknown')),
    pid: process.pid,
    start: procStat(process.pid)?.start ?? '',
  };
  return self;
}

export function ownerOf(folderName: string): Owner | undefined {
  const m = NAME.exec(folderName);
  return m ? { host: m[1]!, boot: m[2]!, pid: Number(m[3]), start: m[4]! } : undefined;
}

/**
 * Whether a folder's owner may still be using it, judged from this host. A
 * folder of another host counts as alive: its owner cannot be checked here.
 */
export function ownerAlive(owner: Owner, me: Owner, stat: (pid: number) => { state: string; start: string } | undefined): boolean {
  if (owner.host !== me.host) return true;
  if (owner.boot !== me.boot) return false; // every process of an earlier boot is gone
  const proc = stat(owner.pid);
  if (!proc) return false;
  if (proc.state === 'Z' || proc.state === 'X') return false; // exited, not yet reaped
  // A start time unknown on either side (no /proc): a live pid counts as the owner.
  return owner.start === '' || proc.start === '' || proc.start === owner.start;
}

/** A fresh work folder for one job, named after this process. */
export function makeWorkDir(root: string, videoId: string): Promise<string> {
  const { host, boot, pid, start } = currentOwner();
  // The id comes from the queue, which anything may write to: keep it a plain name.
  const safeId = videoId.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 64);
  return mkdtemp(join(root, `vgen-${host}.${boot}.${pid}.${start}-${safeId}-`));
}

/** Remove the work folders under root whose owner is dead; returns their names. */
export async function sweepWorkDirs(root: string): Promise<string[]> {
  const me = currentOwner();
  // Without /proc (not Linux) any live pid counts as the owner: never remove a live worker's folder.
  const stat = me.start !== '' ? procStat : pidExists;
  const names = await readdir(root).catch(() => [] as string[]);
  const stale = names.filter((name) => {
    const owner = ownerOf(name);
    return owner !== undefined && !ownerAlive(owner, me, stat);
  });
  await Promise.all(stale.map((name) => rm(join(root, name), { recursive: true, force: true })));
  return stale;
}

function pidExists(pid: number): { state: string; start: string } | undefined {
  try {
    process.kill(pid, 0);
    return { state: '?', start: '' };
  } catch (err) {
    // EPERM: it exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? { state: '?', start: '' } : undefined;
  }
}
