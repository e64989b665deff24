// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { el, safeHref, setChildren } from "../src/lib/dom";

const PAYLOADS = [
  "<img src=x onerror=alert(1)>",
  "</script><script>alert(1)</script>",
  '"><svg onload=alert(1)>',
  "javascript:alert(1)",
  "&lt;b&gt;entity&lt;/b&gt;",
];

describe("safeHref", () => {
  it("allows app routes", () => {
    expect(safeHref("/events/abc")).toBe("/events/abc");
    expect(safeHref("/search?q=%3Cx%3E")).toBe("/search?q=%3Cx%3E");
  });

  it("refuses everything else", () => {
    for (const bad of [
      "javascript:alert(1)",
      "JaVaScRiPt:alert(1)",
      " javascript:alert(1)",
      "data:text/html,<script>alert(1)</script>",
      "https://evil.example/",
      "//evil.example/",
      "/\\evil.example",
      "\\\\evil.example",
      "/events/\nx",
      "",
      "events/1",
    ]) {
      expect(safeHref(bad), bad).toBe("#");
    }
  });
});

describe("el", () => {
  it("renders hostile strings as text, never markup", () => {
    for (const payload of PAYLOADS) {
      const node = el("div", { title: payload, "data-x": payload }, payload, el("span", null, payload));
      expect(node.textContent).toBe(payload + payload);
      expect(node.querySelector("img, script, svg")).toBeNull();
      expect(node.children).toHaveLength(1); // only the span we made
      expect(node.getAttribute("title")).toBe(payload);
    }
  });

  it("sanitises links", () => {
    expect(el("a", { href: "javascript:alert(1)" }).getAttribute("href")).toBe("#");
    expect(el("a", { href: "/events/1" }).getAttribute("href")).toBe("/events/1");
  });

  it("refuses handler, style and URL-loading attributes", () => {
    expect(() => el("div", { onclick: "alert(1)" })).toThrow();
    expect(() => el("div", { OnMouseOver: "alert(1)" })).toThrow();
    expect(() => el("div", { style: "color:red" })).toThrow();
    expect(() => el("iframe", { srcdoc: "<script>" })).toThrow();
    expect(() => el("div", { "x onclick": "1" })).toThrow();
    expect(() => el("form", { action: "https://evil.example" })).toThrow();
  });

  it("handles classes, booleans, numbers, nesting and empty children", () => {
    const node = el(
      "p",
      { class: "a b", hidden: true, "data-n": 3, skip: null, off: false },
      "x",
      1,
      null,
      false,
      undefined,
      ["y", ["z"]],
    );
    expect(node.className).toBe("a b");
    expect(node.hasAttribute("hidden")).toBe(true);
    expect(node.getAttribute("data-n")).toBe("3");
    expect(node.hasAttribute("skip")).toBe(false);
    expect(node.hasAttribute("off")).toBe(false);
    expect(node.textContent).toBe("x1yz");
  });

  it("setChildren replaces content with text", () => {
    const node = el("div", null, el("b", null, "old"));
    setChildren(node, PAYLOADS[0]!);
    expect(node.children).toHaveLength(0);
    expect(node.textContent).toBe(PAYLOADS[0]);
  });
});
