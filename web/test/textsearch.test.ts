import { describe, expect, it } from "vitest";
import { gatherPages } from "../src/lib/textsearch";
import type { EventPage, KmEvent } from "../src/types";

const ev = (id: string) => ({ id }) as KmEvent;

/** A server whose text pages hold the given matches; every page but the last stopped at the scan bound. */
function server(pages: string[][]) {
  const asked: (string | null)[] = [];
  const fetchPage = async (cursor: string | null): Promise<EventPage> => {
    asked.push(cursor);
    const i = cursor === null ? 0 : Number(cursor);
    const last = i === pages.length - 1;
    return {
      items: (pages[i] ?? []).map(ev),
      next_cursor: last ? null : String(i + 1),
      ...(last ? {} : { searched_to: `2026-11-2${i}T00:00:00Z` }),
    };
  };
  return { fetchPage, asked };
}

describe("gatherPages", () => {
  it("reads on past empty bounded pages until it has enough", async () => {
    const s = server([[], [], ["a"], ["b", "c"], ["d"]]);
    const got = await gatherPages(s.fetchPage, null, 3, 10_000);
    expect(got.items.map((e) => e.id)).toEqual(["a", "b", "c"]);
    expect(s.asked).toEqual([null, "1", "2", "3"]);
    expect(got.last.next_cursor).toBe("4"); // "load more" continues from there
  });

  it("stops at the end of the data", async () => {
    const s = server([[], ["a"]]);
    const got = await gatherPages(s.fetchPage, null, 100, 10_000);
    expect(got.items.map((e) => e.id)).toEqual(["a"]);
    expect(got.last.next_cursor).toBeNull();
    expect(got.last.searched_to).toBeUndefined();
  });

  it("stops when its time is up and keeps the cursor", async () => {
    const s = server([[], [], [], ["a"]]);
    let t = 0;
    const got = await gatherPages(s.fetchPage, null, 100, 50, () => (t += 30));
    expect(s.asked).toEqual([null, "1"]);
    expect(got.items).toEqual([]);
    expect(got.last.next_cursor).toBe("2");
    expect(got.last.searched_to).toBeDefined();
  });

  it("does not read on for a full page or for a search without a bound", async () => {
    const plain = async (): Promise<EventPage> => ({ items: [ev("x")], next_cursor: "more" });
    const got = await gatherPages(plain, null, 100, 10_000);
    expect(got.items.map((e) => e.id)).toEqual(["x"]);
    const s = server([["a", "b"], ["c"]]);
    expect((await gatherPages(s.fetchPage, "0", 2, 10_000)).items).toHaveLength(2);
    expect(s.asked).toEqual(["0"]);
  });
});
