// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { mergeSorted, VirtualList } from "../src/components/virtualList";
import { el } from "../src/lib/dom";
import { SessionNames } from "../src/lib/sessionNames";
import { newestFirst } from "../src/pages/Live";
import type { KmEvent } from "../src/types";

const desc = (a: number, b: number) => b - a;

describe("mergeSorted", () => {
  it("merges a batch into place and says how far the anchored row moved", () => {
    expect(mergeSorted([5, 9, 1], [8, 6, 4, 2], desc, 0)).toEqual({ items: [9, 8, 6, 5, 4, 2, 1], shift: 1 });
    // anchored at 4 (index 2): 9 and 5 land above it, 1 below
    expect(mergeSorted([5, 9, 1], [8, 6, 4, 2], desc, 2).shift).toBe(2);
    expect(mergeSorted([], [3, 2], desc, 0)).toEqual({ items: [3, 2], shift: 0 });
    expect(mergeSorted([3, 2], [], desc, 0)).toEqual({ items: [3, 2], shift: 2 });
  });

  it("keeps a VirtualList in order whatever order events arrive in", () => {
    const viewport = document.createElement("div");
    Object.defineProperty(viewport, "clientHeight", { value: 100 });
    document.body.appendChild(viewport);
    const list = new VirtualList<{ t: number }>({
      viewport,
      rowHeight: 10,
      cap: 5,
      render: (item) => el("div", { class: "row" }, String(item.t)),
      order: (a, b) => b.t - a.t,
    });
    list.prepend([{ t: 5 }, { t: 7 }]);
    list.prepend([{ t: 6 }, { t: 1 }]); // late arrivals with earlier times
    list.prepend([{ t: 9 }, { t: 3 }]);
    const shown = [...viewport.querySelectorAll(".row")].map((r) => r.textContent);
    expect(shown).toEqual(["9", "7", "6", "5", "3"]); // capped at 5, the oldest dropped
  });
});

describe("newestFirst", () => {
  const e = (id: string, ts: string) => ({ id, ts }) as KmEvent;
  it("orders by the event's time, then id, newest first", () => {
    const events = [
      e("a", "2026-01-01T00:00:01.000001Z"),
      e("b", "2026-01-01T00:00:02.000000Z"),
      e("c", "2026-01-01T00:00:01.000001Z"),
      e("d", "2026-01-01T00:00:00.999999Z"),
    ];
    expect([...events].sort(newestFirst).map((x) => x.id)).toEqual(["b", "c", "a", "d"]);
  });
});

describe("SessionNames", () => {
  it("looks each session up once and fills cells drawn before the answer", async () => {
    const asked: string[] = [];
    let fail = true;
    const names = new SessionNames(async (id) => {
      asked.push(id);
      if (id === "bad" && fail) throw new Error("HTTP 500");
      return `server of ${id}`;
    });
    const a1 = names.cell("s1", "c-server");
    const a2 = names.cell("s1", "c-server");
    expect(a1.textContent).toBe("…");
    const bad = names.cell("bad", "c-server");
    await Promise.resolve();
    await Promise.resolve();
    expect([a1.textContent, a2.textContent]).toEqual(["server of s1", "server of s1"]);
    expect(names.cell("s1", "c-server").textContent).toBe("server of s1");
    expect(asked).toEqual(["s1", "bad"]);
    expect(bad.textContent).toBe("—");
    fail = false; // a failed lookup is asked again by the next cell
    const again = names.cell("bad", "c-server");
    await Promise.resolve();
    await Promise.resolve();
    expect(again.textContent).toBe("server of bad");
    expect(names.get("bad")).toBe("server of bad");
  });

  it("puts the name in as text, never as markup", async () => {
    const names = new SessionNames(async () => '<img src=x onerror="window.__xss=1">');
    const cell = names.cell("s", "c-server");
    await Promise.resolve();
    await Promise.resolve();
    expect(cell.textContent).toBe('<img src=x onerror="window.__xss=1">');
    expect(cell.querySelector("img")).toBeNull();
  });
});
