// Validation with TypeBox's compiler instead of Fastify's default Ajv setup,
// because the defaults are wrong for an API that promises "bad input gets a
// 400 naming the field": Ajv there strips unknown properties and coerces types
// silently. Here the body is checked exactly (the same checker the CLI and the
// worker use); path and query strings are converted to their declared types
// first, since they only ever arrive as text.
//
// Path parameters are ids: one that fails its pattern names nothing, so it is
// a 404 exactly like a well-formed id that does not exist (as Stripe answers).
//
// Before any schema, guardStrings refuses, on every route, a NUL or a lone
// surrogate anywhere in the body (keys included), query, path or headers: no
// schema can forget it, and Postgres never sees a string it cannot store.
import type { FastifyInstance, FastifySchemaCompiler } from 'fastify';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';
import { VgenError } from '../engine/errors.js';
import { describeError } from '../engine/spec.js';
import { findBadString } from '../engine/strings.js';

/** Path parameters that fail their schema or the string guard answer as unknown ids do. */
const notFound = (field: string) =>
  field === '*' // a wildcard path (/media/*) names a file, not an id
    ? new VgenError('not_found', 'no such file')
    : new VgenError('not_found', `no such ${field}: it is not a well-formed id`, field);

export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const checker = TypeCompiler.Compile(schema);
  const convert = httpPart !== 'body';
  return (input: unknown) => {
    const value = convert ? Value.Convert(schema, input) : input;
    if (checker.Check(value)) return { value };
    const first = checker.Errors(value).First();
    const { field, message } = first ? describeError(first) : { field: httpPart ?? 'body', message: 'is invalid' };
    return { error: httpPart === 'params' ? notFound(field) : new VgenError('invalid_request', message, field) };
  };
};

/** Refuse unstorable strings in every part of every request, before validation. */
export function guardStrings(app: FastifyInstance): void {
  app.addHook('preValidation', async (req) => {
    const params = findBadString(req.params, 'params');
    if (params) throw notFound(params.field);
    const bad = findBadString(req.query, 'query') ?? findBadString(req.headers, 'headers') ?? findBadString(req.body, 'body');
    if (bad) throw new VgenError('invalid_request', bad.message, bad.field);
  });
}
