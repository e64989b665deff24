// Free-text search over a bounded scan: the server reads a limited number of events per request
// and says how far back it searched (`searched_to`). This keeps reading further back on its own,
// for a short time, while the matches found are fewer than a page.

import type { EventPage, KmEvent } from "../types";

export interface Gathered {
  items: KmEvent[];
  /** The last page fetched: its cursor and `searched_to` say where the search stands. */
  last: EventPage;
}

export async function gatherPages(
  fetchPage: (cursor: string | null) => Promise<EventPage>,
  cursor: string | null,
  want: number,
  budgetMs: number,
  now: () => number = () => performance.now(),
): Promise<Gathered> {
  const deadline = now() + budgetMs;
  let last = await fetchPage(cursor);
  let items = last.items;
  while (last.searched_to && last.next_cursor && items.length < want && now() < deadline) {
    last = await fetchPage(last.next_cursor);
    items = [...items, ...last.items];
  }
  return { items, last };
}
