// Validation with TypeBox's compiler instead of Fastify's default Ajv setup,
// because the defaults are wrong for an API that promises "bad input gets a
// 400 naming the field": Ajv there strips unknown properties and coerces types
// silently. Here the body is checked exactly (the same checker the CLI and the
// worker use); path and query strings are converted to their declared types
// first, since they only ever arrive as text.
import type { FastifySchemaCompiler } from 'fastify';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';
import { VgenError } from '../engine/errors.js';
import { describeError } from '../engine/spec.js';

export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const checker = TypeCompiler.Compile(schema);
  const convert = httpPart !== 'body';
  return (input: unknown) => {
    const value = convert ? Value.Convert(schema, input) : input;
    if (checker.Check(value)) return { value };
    const first = checker.Errors(value).First();
    const { field, message } = first ? describeError(first) : { field: httpPart ?? 'body', message: 'is invalid' };
    return { error: new VgenError('invalid_request', message, field) };
  };
};
