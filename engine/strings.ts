/// <reference lib="es2024.string" />
// Strings no part of vgen can store or render: a NUL (Postgres text and jsonb
// refuse U+0000) or ill-formed UTF-16 (a lone surrogate, which jsonb refuses
// and UTF-8 cannot encode). The API refuses them anywhere in a request, and
// parseSpec anywhere in a spec, naming the field, instead of failing later.

export interface BadString {
  field: string;
  message: string;
}

/** Why a string is refused, or undefined when it is fine. */
export function stringProblem(s: string): string | undefined {
  if (s.includes('\0')) return 'contains a NUL character (U+0000)';
  if (!s.isWellFormed()) return 'is not well-formed Unicode (it holds a lone surrogate)';
  return undefined;
}

type Frame = { value: unknown; parent?: Frame; key?: string | number };

/** `scenes[0].caption.text`, the form error messages use (see fieldName in spec.ts). */
function pathOf(frame: Frame | undefined, root: string): string {
  const parts: (string | number)[] = [];
  for (let f = frame; f?.parent; f = f.parent) parts.unshift(f.key!);
  const path = parts.reduce<string>((acc, k) => (typeof k === 'number' ? `${acc}[${k}]` : acc ? `${acc}.${k}` : k), '');
  return path || root;
}

/**
 * The first refused string in a JSON-like value, property names included.
 * Iterative, so a deeply nested body cannot overflow the stack.
 */
export function findBadString(value: unknown, root = 'body'): BadString | undefined {
  const stack: Frame[] = [{ value }];
  while (stack.length > 0) {
    const frame = stack.pop()!;
    const v = frame.value;
    if (typeof v === 'string') {
      const problem = stringProblem(v);
      if (problem) {
        const field = pathOf(frame, root);
        return { field, message: `${field} ${problem}` };
      }
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], parent: frame, key: i });
    } else if (v !== null && typeof v === 'object') {
      const keys = Object.keys(v);
      for (const key of keys) {
        const problem = stringProblem(key);
        if (problem) {
          const field = pathOf(frame, root);
          return { field, message: `${field} has a property name that ${problem}` };
        }
      }
      for (let i = keys.length - 1; i >= 0; i--) stack.push({ value: (v as Record<string, unknown>)[keys[i]!], parent: frame, key: keys[i]! });
    }
  }
  return undefined;
}
