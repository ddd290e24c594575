// The shipped templates and their expansion: a template submission
// `{ template, fields }` becomes a render spec here, before the API validates
// it as it validates any spec. Pure: no I/O. A field that fails its schema is
// a 400 naming it as `fields.<path>`; an unknown template one naming `template`.
import type { TObject } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { VgenError } from '../engine/errors.js';
import { describeError, type RenderSpec } from '../engine/spec.js';
import { photoSlideshow } from './photo-slideshow.js';
import { quoteCard } from './quote-card.js';
import type { Template } from './types.js';
import { verticalPromo } from './vertical-promo.js';

export type { Template } from './types.js';

export const TEMPLATES: readonly Template[] = [photoSlideshow, verticalPromo, quoteCard] as unknown as Template[];

/** The names of the shipped templates: the only values the submissions metric's `template` label takes besides "none". */
export const TEMPLATE_NAMES = TEMPLATES.map((t) => t.name);

const checkers = new Map<string, TypeCheck<TObject>>(TEMPLATES.map((t) => [t.name, TypeCompiler.Compile(t.fields)]));

export function findTemplate(name: unknown): Template | undefined {
  return typeof name === 'string' ? TEMPLATES.find((t) => t.name === name) : undefined;
}

/** The spec `fields` make of template `name`; throws VgenError naming `template` or `fields.<path>`. */
export function expandTemplate(name: unknown, fields: unknown): RenderSpec {
  const template = findTemplate(name);
  if (!template)
    throw new VgenError('invalid_request', `template must be one of ${TEMPLATE_NAMES.join(', ')} (GET /v1/templates lists them)`, 'template');
  if (fields === undefined) throw new VgenError('invalid_request', `fields is required: the ${template.name} template's merge fields`, 'fields');
  const checker = checkers.get(template.name)!;
  if (!checker.Check(fields)) {
    const first = checker.Errors(fields).First();
    if (!first || first.path === '') throw new VgenError('invalid_request', 'fields must be an object of the template\'s merge fields', 'fields');
    const { field, message } = describeError(first);
    throw new VgenError('invalid_request', `fields.${message}`, `fields.${field}`);
  }
  return template.build(fields);
}
