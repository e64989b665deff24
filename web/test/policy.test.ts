// Guards for the rules the server's CSP and the threat model impose on the source.
/// <reference types="node" />
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..");

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : /\.(ts|tsx)$/.test(name) ? [path] : [];
  });
}

describe("source policy", () => {
  const files = sources(join(root, "src"));

  it("never turns strings into markup or code", () => {
    const forbidden =
      /\b(innerHTML|outerHTML|insertAdjacentHTML|dangerouslySetInnerHTML|document\.write|createContextualFragment|eval|new Function)\b/;
    for (const file of files) {
      const text = readFileSync(file, "utf8")
        .replace(/^\s*\/\/.*$/gm, "")
        .replace(/\/\*[\s\S]*?\*\//g, "");
      expect(forbidden.exec(text)?.[0], file).toBeUndefined();
    }
  });

  it("loads nothing from another origin", () => {
    for (const file of [...files, join(root, "index.html"), join(root, "src", "styles.css")]) {
      const text = readFileSync(file, "utf8");
      expect(
        /\b(https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}\//i.exec(text.replace(/xmlns="[^"]*"/g, ""))?.[0],
        file,
      ).toBeUndefined();
      expect(/@import|url\(\s*["']?(https?:)?\/\//i.exec(text)?.[0], file).toBeUndefined();
    }
  });

  it("index.html has no inline script or style", () => {
    const html = readFileSync(join(root, "index.html"), "utf8");
    expect(html).not.toMatch(/<style/i);
    expect(html).not.toMatch(/\sstyle=/i);
    expect(html).not.toMatch(/\son[a-z]+=/i);
    for (const m of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)) {
      expect(m[1]).toMatch(/\bsrc=/);
      expect(m[2]!.trim()).toBe("");
    }
  });
});
