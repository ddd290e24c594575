// Storage drivers against real backends: a local folder, and s3rver speaking
// the S3 protocol (multipart upload included).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fsStorage } from '../engine/storage-fs.js';
import { s3Storage } from '../engine/storage-s3.js';
import { IMMUTABLE_CACHE, outputKey } from '../engine/storage.js';
import { runCleanups, startS3, tempDir } from './helpers.js';

after(runCleanups);

test('s3: multipart upload of a large file, served with an immutable Cache-Control', async () => {
  const s3 = await startS3();
  Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
  const storage = s3Storage({ bucket: s3.bucket, region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, publicBaseUrl: s3.env.CDN_BASE_URL! });
  const file = join(tempDir(), 'big.mp4');
  const data = randomBytes(13 * 1024 * 1024); // two 8 MiB parts → multipart
  writeFileSync(file, data);
  const key = outputKey('vid_test', 'r1', 'mp4');
  assert.deepEqual(await storage.put(key, file, 'video/mp4'), { bytes: data.length });
  const url = storage.url(key);
  assert.equal(url, `${s3.env.CDN_BASE_URL}/videos/vid_test/r1.mp4`);
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('cache-control'), IMMUTABLE_CACHE);
  assert.equal(res.headers.get('content-type'), 'video/mp4');
  assert.ok(Buffer.from(await res.arrayBuffer()).equals(data));
});

test('fs: stores under the key, refuses to overwrite it, and refuses keys outside the folder', async () => {
  const dir = tempDir();
  const storage = fsStorage({ dir, publicBaseUrl: () => 'http://cdn.example/media' });
  const file = join(tempDir(), 'a.jpg');
  writeFileSync(file, 'first');
  await storage.put('videos/v/1.jpg', file, 'image/jpeg');
  assert.equal(readFileSync(join(dir, 'videos/v/1.jpg'), 'utf8'), 'first');
  writeFileSync(file, 'second');
  await assert.rejects(storage.put('videos/v/1.jpg', file, 'image/jpeg'), /EEXIST/);
  assert.equal(readFileSync(join(dir, 'videos/v/1.jpg'), 'utf8'), 'first', 'keys are immutable');
  await assert.rejects(storage.put('../escape.jpg', file, 'image/jpeg'), /escapes/);
  assert.equal(storage.url('videos/v/1.jpg'), 'http://cdn.example/media/videos/v/1.jpg');
});

test('fs: removing the last file of a folder never breaks a copy() or put() into it at the same time', async () => {
  const dir = tempDir();
  const storage = fsStorage({ dir, publicBaseUrl: () => 'http://cdn.example/media' });
  const file = join(tempDir(), 'a.mp4');
  writeFileSync(file, 'content');
  await storage.put('private/videos/v/src.mp4', file, 'video/mp4');
  // Each round: the folder's only file is removed (the folder stays)
  // while another key is copied and put into that same folder.
  for (let i = 0; i < 150; i++) {
    await storage.put(`videos/v/old${i}.mp4`, file, 'video/mp4');
    await Promise.all([
      storage.remove(`videos/v/old${i}.mp4`),
      storage.copy('private/videos/v/src.mp4', `videos/v/new${i}.mp4`),
      storage.put(`videos/v/put${i}.mp4`, file, 'video/mp4'),
    ]);
    assert.equal(readFileSync(join(dir, `videos/v/new${i}.mp4`), 'utf8'), 'content');
    assert.equal(readFileSync(join(dir, `videos/v/put${i}.mp4`), 'utf8'), 'content');
    await storage.remove(`videos/v/new${i}.mp4`);
    await storage.remove(`videos/v/put${i}.mp4`);
  }
  // A copy of a missing source still fails.
  await assert.rejects(storage.copy('private/videos/v/none.mp4', 'videos/v/x.mp4'), { code: 'ENOENT' });
});
