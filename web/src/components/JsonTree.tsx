import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { LongText, SafeText } from "./SafeText";

/** Levels open at first; deeper objects and arrays start collapsed. */
const OPEN_DEPTH = 3;
/** Children shown before "show more". */
const CHILDREN_PAGE = 200;

/** A JSON value as a collapsible tree. Strings keep their line breaks, invisible characters are
 *  escaped and marked, matches of `query` highlighted. */
export function JsonTree({ value, query = "", testid }: { value: unknown; query?: string; testid?: string }) {
  return (
    <div class="json-tree" data-testid={testid}>
      <Node value={value} depth={0} query={query} />
    </div>
  );
}

function Node({ name, value, depth, query }: { name?: string; value: unknown; depth: number; query: string }) {
  const key =
    name === undefined ? null : (
      <span class="jt-key">
        <SafeText text={name} query={query} />:{" "}
      </span>
    );
  if (value === null || typeof value !== "object") {
    return (
      <div class="jt-leaf">
        {key}
        <Leaf value={value} query={query} />
      </div>
    );
  }
  return <Branch keyNode={key} value={value as object} depth={depth} query={query} />;
}

function Branch({
  keyNode,
  value,
  depth,
  query,
}: {
  keyNode: ComponentChildren;
  value: object;
  depth: number;
  query: string;
}) {
  const [open, setOpen] = useState(depth < OPEN_DEPTH);
  const [shown, setShown] = useState(CHILDREN_PAGE);
  const isArray = Array.isArray(value);
  const entries: [string, unknown][] = isArray
    ? (value as unknown[]).map((v, i) => [String(i), v])
    : Object.entries(value);
  const [l, r] = isArray ? ["[", "]"] : ["{", "}"];
  const summary = isArray ? `${entries.length} items` : `${entries.length} keys`;
  return (
    <div class="jt-branch" data-testid="json-node" data-open={open ? "true" : "false"}>
      <button
        type="button"
        class="jt-toggle"
        aria-expanded={open}
        data-testid="json-toggle"
        onClick={() => setOpen(!open)}
      >
        {open ? "▾" : "▸"}
      </button>
      {keyNode}
      {l}
      {!open && (
        <span class="muted">
          {" "}
          {summary} {r}
        </span>
      )}
      {open && (
        <>
          <div class="jt-children">
            {entries.slice(0, shown).map(([k, v]) => (
              <Node key={k} name={isArray ? undefined : k} value={v} depth={depth + 1} query={query} />
            ))}
            {entries.length > shown && (
              <button type="button" class="link-button" onClick={() => setShown(shown + CHILDREN_PAGE)}>
                show {Math.min(CHILDREN_PAGE, entries.length - shown)} more of {entries.length}
              </button>
            )}
          </div>
          {r}
        </>
      )}
    </div>
  );
}

function Leaf({ value, query }: { value: unknown; query: string }) {
  if (typeof value === "string")
    return (
      <span class="jt-string">
        "<LongText text={value} query={query} />"
      </span>
    );
  if (typeof value === "number") return <span class="jt-number">{String(value)}</span>;
  if (typeof value === "boolean") return <span class="jt-bool">{String(value)}</span>;
  if (value === null) return <span class="jt-null">null</span>;
  return <span class="muted">{String(value)}</span>;
}
