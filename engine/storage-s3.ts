import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { IMMUTABLE_CACHE, type Storage } from './storage.js';

/** Any S3-compatible endpoint (AWS, MinIO, s3rver); objects are served by a CDN. */
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
          CacheControl: IMMUTABLE_CACHE,
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
  };
}
