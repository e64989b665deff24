// @vitest-environment happy-dom
import { beforeEach, describe, expect, it } from "vitest";
import { registerDraft, saveDrafts, takeDraft } from "../src/lib/drafts";

describe("drafts kept across an ended session", () => {
  beforeEach(() => window.sessionStorage.clear());

  it("gives a form's unsent text back once, on the same page", () => {
    let text = "?q=invoice";
    const unregister = registerDraft("search-form", () => text);
    text = "?q=invoice+2024";
    saveDrafts("/search");
    unregister();
    expect(takeDraft("search-form", "/live")).toBeNull(); // another page
    expect(takeDraft("other-form", "/search")).toBeNull();
    expect(takeDraft("search-form", "/search")).toBe("?q=invoice+2024");
    expect(takeDraft("search-form", "/search")).toBeNull(); // handed out once
    expect(window.sessionStorage.length).toBe(0);
  });

  it("keeps nothing for empty forms or forms no longer on screen", () => {
    const unregister = registerDraft("live-filters", () => "");
    saveDrafts("/live");
    expect(window.sessionStorage.length).toBe(0);
    unregister();
    const gone = registerDraft("live-filters", () => "?q=x");
    gone();
    saveDrafts("/live");
    expect(takeDraft("live-filters", "/live")).toBeNull();
  });

  it("ignores a damaged or foreign entry", () => {
    for (const bad of ["{", "null", "[]", '{"path":"/live","drafts":{"live-filters":5}}', '{"path":1}']) {
      window.sessionStorage.setItem("km_drafts", bad);
      expect(takeDraft("live-filters", "/live")).toBeNull();
    }
  });
});
