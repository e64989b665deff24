import { describe, expect, it } from "vitest";
import { escapeChar, highlightParts, splitInvisible, visibleText } from "../src/lib/invisible";

describe("invisible characters", () => {
  it("escapes bidi controls, zero-width and control characters, keeping tab and line feed", () => {
    expect(splitInvisible("\u202eevil\u202c")).toEqual([
      { text: "\\u202E", escaped: true },
      { text: "evil", escaped: false },
      { text: "\\u202C", escaped: true },
    ]);
    expect(visibleText("a\u200bb\u2066c\u2069\ufeff")).toBe("a\\u200Bb\\u2066c\\u2069\\uFEFF");
    expect(visibleText("line\nnext\tcol")).toBe("line\nnext\tcol");
    expect(visibleText("bell\u0007 del\u007f nbsp-soft\u00ad")).toBe("bell\\u0007 del\\u007F nbsp-soft\\u00AD");
    expect(visibleText("tag \u{E0041}")).toBe("tag \\u{E0041}");
    expect(visibleText("plain café 日本")).toBe("plain café 日本");
    expect(splitInvisible("")).toEqual([{ text: "", escaped: false }]);
    expect(escapeChar("\u061c")).toBe("\\u061C");
  });
});

describe("highlightParts", () => {
  it("marks every case-insensitive match", () => {
    expect(highlightParts("Needle in a needle", "needle")).toEqual([
      { text: "Needle", match: true },
      { text: " in a ", match: false },
      { text: "needle", match: true },
    ]);
    expect(highlightParts("abc", "")).toEqual([{ text: "abc", match: false }]);
    expect(highlightParts("abc", "x")).toEqual([{ text: "abc", match: false }]);
    expect(highlightParts("", "x")).toEqual([{ text: "", match: false }]);
  });
});
