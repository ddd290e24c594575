import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CopyObjectCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createPresignedPost } from '@aws-sdk/s3-presigned-post';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { byteLimit } from './storage-fs.js';
import { cacheControlFor, signedCacheControl, StoredObjectError, type Storage } from './storage.js';

/** A missing key answers 404 (HEAD: NotFound, GET: NoSuchKey). */
const isMissing = (err: unknown) =>
  err instanceof S3ServiceException && (err.$metadata.httpStatusCode === 404 || err.name === 'NotFound' || err.name === 'NoSuchKey');

/**
 * Any S3-compatible endpoint (AWS, MinIO, s3rver). Public objects (`videos/`)
 * are served by a CDN; private ones (`private/videos/`) only by presigned GETs
 * to the S3 endpoint itself, so the CDN and any public bucket policy must
 * cover the `videos/` prefix alone (docs/operations.md).
 */
export function s3Storage(opts: {
  bucket: string;
  region: string;
  endpoint?: string;
  forcePathStyle: boolean;
  publicBaseUrl: string;
}): Storage {
  // Credentials come from the SDK's default chain (env, instance profile, …).
  const client = new S3Client({ region: opts.region, endpoint: opts.endpoint, forcePathStyle: opts.forcePathStyle });
  return {
    driver: 's3',
    async put(key, filePath, contentType) {
      const { size } = await stat(filePath);
      // lib-storage switches to multipart above 5 MiB and uploads parts in parallel.
      const upload = new Upload({
        client,
        params: {
          Bucket: opts.bucket,
          Key: key,
          Body: createReadStream(filePath),
          ContentType: contentType,
          ContentLength: size,
          CacheControl: cacheControlFor(key),
          // Keys are immutable: refuse to overwrite (S3 conditional write).
          IfNoneMatch: '*',
        },
        queueSize: 4,
        partSize: 8 * 1024 * 1024,
      });
      await upload.done();
      return { bytes: size };
    },
    url: (key) => `${opts.publicBaseUrl}/${key}`,
    signedUrl: (key, ttlSeconds) =>
      // Signed locally: no request to S3. The response's Cache-Control is overridden to private.
      getSignedUrl(client, new GetObjectCommand({ Bucket: opts.bucket, Key: key, ResponseCacheControl: signedCacheControl(ttlSeconds) }), { expiresIn: ttlSeconds }),
    async copy(from, to) {
      const head = await client.send(new HeadObjectCommand({ Bucket: opts.bucket, Key: from }));
      await client.send(new CopyObjectCommand({
        Bucket: opts.bucket,
        Key: to,
        CopySource: `${opts.bucket}/${from.split('/').map(encodeURIComponent).join('/')}`,
        // New metadata: the cache policy follows the new key's prefix.
        MetadataDirective: 'REPLACE',
        ContentType: head.ContentType,
        CacheControl: cacheControlFor(to),
      }));
    },
    async remove(key) {
      await client.send(new DeleteObjectCommand({ Bucket: opts.bucket, Key: key }));
    },
    async head(key, signal) {
      try {
        const head = await client.send(new HeadObjectCommand({ Bucket: opts.bucket, Key: key }), { abortSignal: signal });
        return { bytes: head.ContentLength ?? 0, contentType: head.ContentType };
      } catch (err) {
        if (isMissing(err)) return undefined;
        throw err;
      }
    },
    async download(key, dest, maxBytes, signal) {
      let body: Readable;
      try {
        const res = await client.send(new GetObjectCommand({ Bucket: opts.bucket, Key: key }), { abortSignal: signal });
        if ((res.ContentLength ?? 0) > maxBytes) {
          (res.Body as Readable | undefined)?.destroy();
          throw new StoredObjectError('too_large', `${key} is larger than ${maxBytes} bytes`);
        }
        body = res.Body as Readable;
      } catch (err) {
        if (isMissing(err)) throw new StoredObjectError('missing', `${key} does not exist`);
        throw err;
      }
      // Counted while streaming too: the length header is the store's claim.
      await pipeline(body, byteLimit(maxBytes, key), createWriteStream(dest), { signal });
      return { bytes: (await stat(dest)).size };
    },
    async presignPost(key, { contentType, maxBytes, ttlSeconds }) {
      // Signed locally. Each field becomes an exact-match condition (the key
      // too); the content type is the exact declared one, not a `starts-with`
      // on its family, which would also admit image/svg+xml and the like.
      // Objects are private (no acl field): nothing serves uploads/ by URL.
      const { url, fields } = await createPresignedPost(client, {
        Bucket: opts.bucket,
        Key: key,
        Fields: { 'Content-Type': contentType },
        Conditions: [['content-length-range', 1, maxBytes]],
        Expires: ttlSeconds,
      });
      return { url, fields, expiresAt: new Date(Date.now() + ttlSeconds * 1000) };
    },
  };
}
