// A newest-first list that keeps up to `cap` items in memory but only the rows in view
// (plus some overscan) in the DOM, so that a burst of thousands of events a second costs
// the same small, constant DOM work per update.

export interface VirtualListOptions<T> {
  /** The scrolling element (overflow-y: auto, fixed height). */
  viewport: HTMLElement;
  /** Builds the element of one item (called once per item; the element is reused). */
  render: (item: T) => HTMLElement;
  /** Every row's height in px (rows must be exactly this tall). */
  rowHeight: number;
  /** Items kept; older ones are dropped. */
  cap: number;
  /** Extra rows rendered below (and half as many above) the visible ones. */
  overscan?: number;
  /** Called after each draw with the number of items held. */
  onChange?: (total: number) => void;
  /** When set, items are kept sorted by it (negative: `a` first) and new ones are merged into
   *  place, e.g. newest first by time whatever order they arrive in; otherwise new items go on top. */
  order?: (a: T, b: T) => number;
}

/**
 * `batch` merged into `items` (both in `order`; the batch is sorted here), and by how many rows
 * the item at `anchor` moved down (the new items placed before it).
 */
export function mergeSorted<T>(
  batch: readonly T[],
  items: readonly T[],
  order: (a: T, b: T) => number,
  anchor: number,
): { items: T[]; shift: number } {
  const fresh = [...batch].sort(order);
  const out: T[] = [];
  let i = 0;
  let j = 0;
  let shift = 0;
  while (i < fresh.length || j < items.length) {
    if (j >= items.length || (i < fresh.length && order(fresh[i]!, items[j]!) <= 0)) {
      if (j <= anchor) shift++;
      out.push(fresh[i++]!);
    } else out.push(items[j++]!);
  }
  return { items: out, shift: Math.min(shift, fresh.length) };
}

/** The index range [first, end) of rows to render for a scroll position. */
export function visibleRange(
  scrollTop: number,
  viewportHeight: number,
  rowHeight: number,
  total: number,
  overscan: number,
): [number, number] {
  const top = Math.max(0, Math.floor(scrollTop / rowHeight));
  const first = Math.max(0, top - Math.ceil(overscan / 2));
  const end = Math.min(total, top + Math.ceil(Math.max(viewportHeight, rowHeight) / rowHeight) + overscan);
  return [Math.min(first, end), end];
}

export class VirtualList<T extends object> {
  private items: T[] = [];
  private readonly spacer: HTMLDivElement;
  private readonly window: HTMLDivElement;
  private readonly cache = new WeakMap<T, HTMLElement>();
  private readonly overscan: number;
  private frame = 0;

  constructor(private readonly opts: VirtualListOptions<T>) {
    this.overscan = opts.overscan ?? 40;
    this.spacer = document.createElement("div");
    this.spacer.className = "vlist-spacer";
    this.window = document.createElement("div");
    this.window.className = "vlist-window";
    this.spacer.appendChild(this.window);
    opts.viewport.replaceChildren(this.spacer);
    opts.viewport.addEventListener("scroll", this.onScroll, { passive: true });
    this.draw();
  }

  get size(): number {
    return this.items.length;
  }

  /** Add items (newest first) at the top; a reader scrolled down keeps their place. */
  prepend(batch: readonly T[]): void {
    if (batch.length === 0) return;
    const vp = this.opts.viewport;
    const { order, rowHeight } = this.opts;
    let shift = batch.length;
    if (order) {
      const merged = mergeSorted(batch, this.items, order, Math.floor(vp.scrollTop / rowHeight));
      this.items = merged.items;
      shift = merged.shift;
    } else this.items = batch.concat(this.items);
    if (this.items.length > this.opts.cap) this.items.length = this.opts.cap;
    this.spacer.style.height = `${this.items.length * rowHeight}px`;
    // The rows in view moved down by `shift`: follow them (the browser clamps).
    if (vp.scrollTop > 0) vp.scrollTop += shift * rowHeight;
    this.draw();
  }

  clear(): void {
    this.items = [];
    this.opts.viewport.scrollTop = 0;
    this.draw();
  }

  destroy(): void {
    this.opts.viewport.removeEventListener("scroll", this.onScroll);
    if (this.frame) cancelAnimationFrame(this.frame);
    this.opts.viewport.replaceChildren();
  }

  private readonly onScroll = () => {
    if (!this.frame)
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.draw();
      });
  };

  private draw(): void {
    const { viewport, rowHeight } = this.opts;
    this.spacer.style.height = `${this.items.length * rowHeight}px`;
    const [first, end] = visibleRange(
      viewport.scrollTop,
      viewport.clientHeight,
      rowHeight,
      this.items.length,
      this.overscan,
    );
    const rows: HTMLElement[] = [];
    for (let i = first; i < end; i++) {
      const item = this.items[i]!;
      let row = this.cache.get(item);
      if (!row) {
        row = this.opts.render(item);
        this.cache.set(item, row);
      }
      rows.push(row);
    }
    this.window.style.transform = `translateY(${first * rowHeight}px)`;
    this.window.replaceChildren(...rows);
    viewport.setAttribute("data-total-rows", String(this.items.length));
    this.opts.onChange?.(this.items.length);
  }
}
