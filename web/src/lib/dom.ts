// XSS-safe DOM building for the few places that render imperatively (the live list).
//
// Payloads and every other API value are untrusted. Data is only ever put into the
// page as DOM text nodes or as attribute values set with setAttribute; never through
// innerHTML/outerHTML/insertAdjacentHTML. Event-handler attributes (on*) and inline
// style attributes are refused (the CSP forbids them anyway), and links may only point
// at this app's own routes.

export type Child = Node | string | number | null | undefined | false | readonly Child[];

export type Attrs = Record<string, string | number | boolean | null | undefined>;

/**
 * The path when it is a same-origin route of this app ("/events/…", "/search?q=…"),
 * otherwise "#". Rejects absolute and protocol-relative URLs, javascript:/data: URLs,
 * backslashes (which browsers treat as slashes) and control characters.
 */
export function safeHref(path: string): string {
  if (typeof path !== "string" || path.length === 0 || path.length > 4096) return "#";
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(path)) return "#";
  if (!path.startsWith("/") || path.startsWith("//")) return "#";
  return path;
}

function appendChildren(parent: Node, children: readonly Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) {
      appendChildren(parent, child);
    } else if (typeof child === "string" || typeof child === "number") {
      parent.appendChild(document.createTextNode(String(child)));
    } else {
      parent.appendChild(child as Node);
    }
  }
}

/**
 * Create an element. Strings among `children` become text nodes (never parsed as HTML).
 * Attribute names must be plain (letters, digits, "-"), may not be event handlers or
 * "style"; "href" goes through safeHref; "class" sets className; true -> empty attribute.
 */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (attrs) {
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      const lower = name.toLowerCase();
      if (!/^[a-z][a-z0-9-]*$/.test(lower) || lower.startsWith("on") || lower === "style" || lower === "srcdoc") {
        throw new Error(`el(): attribute ${JSON.stringify(name)} is not allowed`);
      }
      if (lower === "src" || lower === "action" || lower === "formaction") {
        throw new Error(`el(): attribute ${JSON.stringify(name)} is not allowed`);
      }
      if (lower === "class") {
        node.className = String(value);
      } else if (lower === "href") {
        node.setAttribute("href", safeHref(String(value)));
      } else {
        node.setAttribute(lower, value === true ? "" : String(value));
      }
    }
  }
  appendChildren(node, children);
  return node;
}

/** Replace all children of `parent` with the given (text-safe) children. */
export function setChildren(parent: Node, ...children: Child[]): void {
  while (parent.firstChild) parent.removeChild(parent.firstChild);
  appendChildren(parent, children);
}
