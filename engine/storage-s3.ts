import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { CopyObjectCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { cacheControlFor, signedCacheControl, type Storage } from './storage.js';

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
  };
}
