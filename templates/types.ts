// What a template is: a name, a description, typed merge fields (a TypeBox
// schema, served as JSON Schema by GET /v1/templates), an example field set
// that renders, and a pure build() from fields to a render spec. The API
// expands a template submission with expandTemplate (templates/index.ts) and
// then validates the result exactly like a raw spec.
import { Type, type Static, type TObject } from '@sinclair/typebox';
import { ASSET_PATTERN, LIMITS, type RenderSpec } from '../engine/spec.js';

export type Template<S extends TObject = TObject> = {
  name: string;
  description: string;
  fields: S;
  example: Static<S>;
  /** Fields already checked against `fields`; throws VgenError naming `fields.<name>` for rules the schema cannot express. */
  build(fields: Static<S>): RenderSpec;
};

/** Declares a template with its fields' static type inferred. */
export const defineTemplate = <S extends TObject>(t: Template<S>): Template<S> => t;

export const AssetField = (description: string) =>
  Type.String({ minLength: 1, maxLength: LIMITS.maxUrlChars, pattern: ASSET_PATTERN, description: `${description} An https:// URL, assets/<name> or upload://<id>.` });

export const ColorField = (description: string, example: string) =>
  Type.String({ pattern: '^(#[0-9a-fA-F]{6}|[A-Za-z]{3,20})$', format: 'color', description: `${description} #rrggbb or a color name.`, examples: [example] });

export const TextField = (maxLength: number, description: string) => Type.String({ minLength: 1, maxLength, description });
