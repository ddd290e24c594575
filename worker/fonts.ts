// The bundled fonts: Noto Sans and Noto Serif CJK, regular and bold (Debian's
// fonts-noto-cjk, installed with ffmpeg by scripts/setup.sh and the
// Dockerfile). Each is found through fontconfig and accepted only if it
// covers Chinese, so a text layer in any of them draws glyphs, not boxes.
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import type { FontName } from '../engine/spec.js';

const FAMILIES: Record<FontName, string> = {
  sans: 'Noto Sans CJK SC',
  'sans-bold': 'Noto Sans CJK SC:bold',
  serif: 'Noto Serif CJK SC',
  'serif-bold': 'Noto Serif CJK SC:bold',
};

const HINT = 'install one with `apt-get install fonts-noto-cjk fontconfig`, or set FONT_FILE';

/**
 * A font with Chinese glyphs (the default, sans). fc-match never says "not
 * found" (it falls back to any font), so the match is accepted only if
 * fontconfig says it covers zh-cn.
 */
export function findFont(): string {
  const override = process.env.FONT_FILE;
  if (override) {
    try {
      accessSync(override, constants.R_OK);
    } catch {
      throw new Error(`FONT_FILE=${override} is not a readable file`);
    }
    return override;
  }
  const file = match(FAMILIES.sans);
  if (!file) throw new Error(`no font with Chinese glyphs found; ${HINT}`);
  return file;
}

let cached: Partial<Record<FontName, string>> | undefined;

/** Every bundled font fontconfig finds with Chinese glyphs; a missing one is drawn in the default font. */
export function findFonts(): Partial<Record<FontName, string>> {
  if (cached) return cached;
  const found: Partial<Record<FontName, string>> = {};
  for (const [name, family] of Object.entries(FAMILIES) as [FontName, string][]) {
    const file = match(family);
    if (file) found[name] = file;
  }
  return (cached = found);
}

function match(family: string): string | undefined {
  let out: string;
  try {
    out = execFileSync('fc-match', ['-f', '%{file}|%{lang}', `${family}:lang=zh-cn`], { encoding: 'utf8' });
  } catch {
    throw new Error(`fc-match (fontconfig) is not available to find a CJK font; ${HINT}`);
  }
  const [file, ...langs] = out.split('|');
  return file && langs.includes('zh-cn') ? file : undefined;
}
