// Work folders name their owner; a starting worker removes only those whose
// owner is dead (worker/work-dir.ts).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { currentOwner, makeWorkDir, ownerAlive, ownerOf, procStat, sweepWorkDirs, type Owner } from '../worker/work-dir.js';
import { runCleanups, tempDir } from './helpers.js';

after(runCleanups);

const me: Owner = { host: 'aaaaaaaa', boot: 'bbbbbbbb', pid: 100, start: '5000' };

test('a work folder names this process; the name parses back to it', async () => {
  const root = tempDir();
  const dir = await makeWorkDir(root, 'vid_abc');
  assert.equal(dirname(dir), root);
  assert.deepEqual(ownerOf(basename(dir)), currentOwner());
  assert.equal(currentOwner().pid, process.pid);
  assert.equal(currentOwner().start, procStat(process.pid)?.start);
  assert.match(currentOwner().start, /^\d+$/);
  // An id from the queue cannot leave the root or break the name.
  const odd = await makeWorkDir(root, '../../etc-x');
  assert.equal(dirname(odd), root);
  assert.deepEqual(ownerOf(basename(odd)), currentOwner());
  assert.equal(ownerOf('vgen-vid_abc-123456'), undefined, 'folders of older versions are not claimed');
});

test('ownerAlive: only a live process with the same start time on this host and boot owns a folder', () => {
  const stat = (pid: number) => ({ 100: { state: 'S', start: '5000' }, 101: { state: 'Z', start: '5000' }, 102: { state: 'R', start: '7000' } })[pid];
  assert.equal(ownerAlive({ ...me }, me, stat), true);
  assert.equal(ownerAlive({ ...me, host: 'cccccccc', pid: 999 }, me, stat), true, 'another host: not ours to judge');
  assert.equal(ownerAlive({ ...me, boot: 'dddddddd' }, me, stat), false, 'an earlier boot');
  assert.equal(ownerAlive({ ...me, pid: 999 }, me, stat), false, 'no such process');
  assert.equal(ownerAlive({ ...me, pid: 101 }, me, stat), false, 'exited, not yet reaped');
  assert.equal(ownerAlive({ ...me, pid: 102 }, me, stat), false, 'pid reused by a younger process');
  assert.equal(ownerAlive({ ...me, pid: 102, start: '' }, me, stat), true, 'no start time known: a live pid is the owner');
});

test('sweepWorkDirs removes the folders of dead owners and keeps everything else', async () => {
  const root = tempDir();
  const self = currentOwner();
  const dead = spawn('true');
  await new Promise((resolve) => dead.once('exit', resolve));
  const name = (o: Owner, id: string) => `vgen-${o.host}.${o.boot}.${o.pid}.${o.start}-${id}-abcdef`;
  const mine = await makeWorkDir(root, 'vid_mine');
  const keep = [
    basename(mine),
    name({ ...self, host: 'cccccccc', pid: dead.pid! }, 'vid_otherhost'),
    'vgen-vid_old-123456',
    'unrelated',
  ];
  const stale = [
    name({ ...self, pid: dead.pid!, start: '1' }, 'vid_dead'),
    name({ ...self, start: String(Number(self.start) + 1) }, 'vid_reused'),
    name({ ...self, boot: 'dddddddd' }, 'vid_lastboot'),
  ];
  for (const n of [...keep, ...stale]) mkdirSync(join(root, n), { recursive: true });
  mkdirSync(join(root, stale[0]!, 'nested'));

  assert.deepEqual((await sweepWorkDirs(root)).sort(), [...stale].sort());
  assert.deepEqual(readdirSync(root).sort(), [...keep].sort());
  assert.ok(existsSync(mine));
  assert.deepEqual(await sweepWorkDirs(join(root, 'missing')), [], 'a missing root is not an error');
});
