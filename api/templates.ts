// /v1/templates: the shipped templates (templates/), each with its merge
// fields as JSON Schema and an example field set that renders. Also the
// expansion of a template submission to POST /v1/videos: `{ template, fields }`
// (plus callbackUrl) becomes a spec before that route validates its body, so
// a template's output meets exactly the checks a raw spec does.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { VgenError } from '../engine/errors.js';
import { expandTemplate, findTemplate, TEMPLATES } from '../templates/index.js';
import { ErrorBody } from './schemas.js';

/** The template a submission was expanded from (the submissions metric and the idempotency hash read it). */
export const templateUsed = new WeakMap<FastifyRequest, string>();

const TEMPLATE_KEYS = new Set(['template', 'fields', 'callbackUrl']);

/**
 * A preValidation hook for POST /v1/videos: a body with a `template` key is
 * replaced by the spec its fields make (and its callbackUrl, if any).
 */
export async function expandTemplateSubmission(req: FastifyRequest): Promise<void> {
  const body = req.body as Record<string, unknown> | null | undefined;
  if (!body || typeof body !== 'object' || Array.isArray(body) || !('template' in body)) return;
  // Counted under its name from here on (a bad field is an invalid submission of that template).
  const known = findTemplate(body.template);
  if (known) templateUsed.set(req, known.name);
  for (const key of Object.keys(body))
    if (!TEMPLATE_KEYS.has(key)) throw new VgenError('invalid_request', `${key} is not allowed beside template: a template submission has template, fields and callbackUrl only`, key);
  const spec = expandTemplate(body.template, body.fields);
  req.body = { ...spec, ...(body.callbackUrl !== undefined && { callbackUrl: body.callbackUrl }) };
}

const TemplateBody = Type.Object({
  name: Type.String(),
  description: Type.String(),
  fields: Type.Unknown({ description: 'The merge fields, as JSON Schema (an object schema).' }),
  example: Type.Unknown({ description: 'A field set that renders.' }),
});

export async function templateRoutes(app: FastifyInstance) {
  // Plain JSON once: the TypeBox schemas carry symbols and functions nothing needs.
  const data = TEMPLATES.map((t) => JSON.parse(JSON.stringify({ name: t.name, description: t.description, fields: t.fields, example: t.example })) as unknown);
  app.get('/v1/templates', {
    onRequest: app.authenticate,
    schema: {
      tags: ['templates'],
      summary: 'List the templates',
      description: 'Every template POST /v1/videos accepts as `{ "template": "<name>", "fields": { … } }`, with its merge fields as JSON Schema and an example field set that renders.',
      security: [{ bearer: [] }],
      response: { 200: Type.Object({ object: Type.Literal('list'), data: Type.Array(TemplateBody) }), 401: ErrorBody },
    },
  }, async () => ({ object: 'list', data }));
}
