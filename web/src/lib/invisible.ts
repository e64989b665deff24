// Invisible and bidirectional control characters, made visible. A payload can hide text
// (zero-width characters) or reorder it on screen (bidi overrides: "\u202Eevil\u202C" displays
// as "live"); shown raw, the browser applies them. Here each becomes a visible escape.

/** Bidi controls (embeddings, overrides, isolates, marks), zero-width and other invisible format
 *  characters, and C0/C1 controls other than tab and line feed. */
// eslint-disable-next-line no-control-regex
const INVISIBLE =
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb]|\udb40[\udc00-\udfff]/g;

export interface TextPart {
  text: string;
  /** True for an escaped invisible character ("\u202E"): render it marked. */
  escaped: boolean;
}

/** "\u202E" for one invisible character (astral ones as their code point, "\u{E0041}"). */
export function escapeChar(ch: string): string {
  const cp = ch.codePointAt(0) ?? 0;
  return cp > 0xffff ? `\\u{${cp.toString(16).toUpperCase()}}` : `\\u${cp.toString(16).toUpperCase().padStart(4, "0")}`;
}

/** The text cut into plain runs and escaped invisible characters, in order. */
export function splitInvisible(text: string): TextPart[] {
  const parts: TextPart[] = [];
  let last = 0;
  for (const m of text.matchAll(INVISIBLE)) {
    const at = m.index ?? 0;
    if (at > last) parts.push({ text: text.slice(last, at), escaped: false });
    parts.push({ text: escapeChar(m[0]), escaped: true });
    last = at + m[0].length;
  }
  if (last < text.length || parts.length === 0) parts.push({ text: text.slice(last), escaped: false });
  return parts;
}

/** The text with every invisible character replaced by its escape (for titles and attributes). */
export function visibleText(text: string): string {
  return text.replace(INVISIBLE, escapeChar);
}

export interface HighlightPart {
  text: string;
  match: boolean;
}

/** The text cut around case-insensitive occurrences of `query` (none when the query is empty). */
export function highlightParts(text: string, query: string): HighlightPart[] {
  const q = query.toLowerCase();
  if (!q) return [{ text, match: false }];
  const lower = text.toLowerCase();
  const parts: HighlightPart[] = [];
  let from = 0;
  // lowercasing can change lengths (e.g. "İ"); fall back to no highlight then
  if (lower.length !== text.length) return [{ text, match: lower.includes(q) }];
  for (let at = lower.indexOf(q); at !== -1; at = lower.indexOf(q, from)) {
    if (at > from) parts.push({ text: text.slice(from, at), match: false });
    parts.push({ text: text.slice(at, at + q.length), match: true });
    from = at + q.length;
  }
  if (from < text.length || parts.length === 0) parts.push({ text: text.slice(from), match: false });
  return parts;
}
