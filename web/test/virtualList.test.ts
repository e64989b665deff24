// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { VirtualList, visibleRange } from "../src/components/virtualList";
import { el } from "../src/lib/dom";

describe("visibleRange", () => {
  it("covers the viewport plus overscan", () => {
    expect(visibleRange(0, 290, 29, 2000, 10)).toEqual([0, 20]);
    expect(visibleRange(290, 290, 29, 2000, 10)).toEqual([5, 30]);
    expect(visibleRange(0, 290, 29, 3, 10)).toEqual([0, 3]);
    expect(visibleRange(0, 0, 29, 0, 10)).toEqual([0, 0]);
    expect(visibleRange(1e6, 290, 29, 50, 10)).toEqual([50, 50]);
  });
});

type Item = { id: number };

function setup(cap = 100) {
  const viewport = document.createElement("div");
  Object.defineProperty(viewport, "clientHeight", { value: 100 });
  document.body.appendChild(viewport);
  let built = 0;
  const list = new VirtualList<Item>({
    viewport,
    rowHeight: 10,
    cap,
    overscan: 4,
    render: (item) => {
      built++;
      return el("div", { class: "row" }, String(item.id));
    },
  });
  return { viewport, list, built: () => built };
}

const items = (from: number, to: number): Item[] => {
  const out: Item[] = [];
  for (let i = to; i >= from; i--) out.push({ id: i }); // newest first
  return out;
};

describe("VirtualList", () => {
  it("renders only the rows in view, newest first", () => {
    const { viewport, list } = setup();
    list.prepend(items(1, 50));
    const rows = viewport.querySelectorAll(".row");
    expect(rows.length).toBe(14); // 10 visible + 4 overscan
    expect(rows[0]!.textContent).toBe("50");
    expect(viewport.getAttribute("data-total-rows")).toBe("50");
    expect(list.size).toBe(50);
  });

  it("caps the items it keeps", () => {
    const { list, viewport } = setup(20);
    list.prepend(items(1, 15));
    list.prepend(items(16, 30));
    expect(list.size).toBe(20);
    expect(viewport.querySelector(".row")!.textContent).toBe("30");
  });

  it("reuses the element of an item it already built", () => {
    const { list, built } = setup();
    const batch = items(1, 5);
    list.prepend(batch);
    const first = built();
    list.prepend(items(6, 6));
    expect(built()).toBe(first + 1);
  });

  it("keeps a scrolled-down reader's place", () => {
    const { list, viewport } = setup();
    list.prepend(items(1, 50));
    viewport.scrollTop = 100;
    list.prepend(items(51, 53));
    expect(viewport.scrollTop).toBe(130);
  });

  it("clears and tears down", () => {
    const { list, viewport } = setup();
    list.prepend(items(1, 5));
    list.clear();
    expect(list.size).toBe(0);
    expect(viewport.querySelectorAll(".row").length).toBe(0);
    list.destroy();
    expect(viewport.childElementCount).toBe(0);
  });
});
