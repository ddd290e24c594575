// The metric names a PromQL expression reads, so a test can hold them against
// the names the code registers (a renamed metric then fails the test, not a
// dashboard in production). A small lexer, not a parser: promtool checks the
// syntax; this only has to find every selector's name in valid PromQL.

const KEYWORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'inf', 'nan', 'atan2']);

export function metricNames(expr: string): string[] {
  const s = expr
    // strings first: they may hold braces, brackets and anything else
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    // label matchers, range and subquery windows
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    // label lists of grouping and vector matching
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    // durations after offset / @ (5m, 1h30m)
    .replace(/\b(offset|@)\s*-?[0-9][0-9a-z.]*/g, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w])(\s*\()?/g)) {
    const [, name, call] = m;
    if (call || KEYWORDS.has(name!.toLowerCase())) continue;
    names.add(name!);
  }
  return [...names].sort();
}
