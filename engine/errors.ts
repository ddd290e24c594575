// The error catalogue. Every error the API returns has a stable `code` from
// this table; clients and tests match on the code, never on message text.
export const ERRORS = {
  invalid_request: 400, // a body, query or header failed its schema
  invalid_json: 400,
  spec_invalid: 400, // a render spec broke a rule the schema cannot express
  asset_forbidden: 400, // an asset URL points somewhere a worker must not go
  callback_forbidden: 400, // a callbackUrl points somewhere webhooks must not go (a private address, credentials)
  idempotency_key_reused: 400, // same Idempotency-Key, different request
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  request_timeout: 408, // the request did not finish arriving in time
  conflict: 409,
  body_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  too_many_active_videos: 429, // the caller already has USER_MAX_ACTIVE_VIDEOS videos queued or rendering
  headers_too_large: 431, // request line and headers over Node's 16 KiB (e.g. thousands of query parameters)
  internal: 500,
  unavailable: 503, // the render queue (Redis) is unreachable; nothing was created, safe to retry
} as const;

export type ErrorCode = keyof typeof ERRORS;

export class VgenError extends Error {
  readonly statusCode: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'VgenError';
    this.statusCode = ERRORS[code];
  }

  toJSON() {
    return { code: this.code, message: this.message, ...(this.field ? { field: this.field } : {}) };
  }
}

/** Render failures a user reads on the video object. */
export const RENDER_ERRORS = {
  spec_invalid: 'The render spec is not valid.',
  asset_forbidden: 'An asset URL points to an address workers may not fetch.',
  asset_unavailable: 'An asset could not be downloaded.',
  asset_invalid: 'An asset is not a supported image or audio file.',
  render_failed: 'The video could not be rendered.',
  render_timeout: 'Rendering took longer than allowed.',
  upload_failed: 'The rendered video could not be stored.',
  lost: 'The render job was lost before it ran.',
  worker_lost: 'The render kept losing its worker (the worker process died while rendering) more times than allowed.',
} as const;

export type RenderErrorCode = keyof typeof RENDER_ERRORS;

/** An error a render step raises on purpose, with a code users can read. */
export class RenderError extends Error {
  constructor(
    readonly code: RenderErrorCode,
    message: string = RENDER_ERRORS[code],
    /** false when retrying cannot help (a forbidden or broken asset). */
    readonly retryable = true,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'RenderError';
  }
}
