// Line diffs for the Pins view: what changed between a pinned tool definition and the latest one.

export type DiffOp = "same" | "add" | "del";
export interface DiffLine {
  op: DiffOp;
  text: string;
}

/** Lines kept, removed and added from `before` to `after` (longest common subsequence). */
export function diffLines(before: string, after: string): DiffLine[] {
  const a = before === "" ? [] : before.split("\n");
  const b = after === "" ? [] : after.split("\n");
  // Tool definitions are small; a table of (a.length+1)*(b.length+1) is bounded below.
  if (a.length * b.length > 4_000_000) {
    return [...a.map((text) => ({ op: "del" as const, text })), ...b.map((text) => ({ op: "add" as const, text }))];
  }
  const n = a.length;
  const m = b.length;
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      out.push({ op: "same", text: a[i]! });
      i++;
      j++;
    } else if (lcs[i + 1]![j]! >= lcs[i]![j + 1]!) out.push({ op: "del", text: a[i++]! });
    else out.push({ op: "add", text: b[j++]! });
  }
  while (i < n) out.push({ op: "del", text: a[i++]! });
  while (j < m) out.push({ op: "add", text: b[j++]! });
  return out;
}

/** A definition field as diffable text: strings as they are (with their line breaks), the rest as
 * pretty JSON with sorted keys, so a reordering alone is no change. */
export function fieldText(value: unknown): string {
  if (value === undefined) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(sortKeys(value), null, 2) ?? "";
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) out[key] = sortKeys((value as Record<string, unknown>)[key]);
    return out;
  }
  return value;
}

export const DEFINITION_FIELDS = ["name", "description", "inputSchema", "outputSchema", "annotations"] as const;

/** Per field of two definitions: its diff, and whether it changed. */
export function definitionDiff(
  before: Record<string, unknown> | null,
  after: Record<string, unknown> | null,
): { field: string; changed: boolean; lines: DiffLine[] }[] {
  return DEFINITION_FIELDS.filter((f) => (before && f in before) || (after && f in after)).map((field) => {
    const a = fieldText(before?.[field]);
    const b = fieldText(after?.[field]);
    return { field, changed: a !== b, lines: diffLines(a, b) };
  });
}

const INVISIBLE = /[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]/g;

/** Invisible and bidi control characters made visible ("⟨U+202E⟩"): a tool description must not
 * hide text from its reviewer. */
export function showInvisible(text: string): string {
  return text.replace(INVISIBLE, (c) => `⟨U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}⟩`);
}
