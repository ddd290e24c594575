// The simulator's event queue: a binary min-heap on (time, insertion order),
// so events at the same instant run in the order they were scheduled and a
// run never depends on how the engine happens to break ties.

export interface Timed {
  readonly t: number;
}

export class EventHeap<T extends Timed> {
  private readonly items: { e: T; seq: number }[] = [];
  private seq = 0;

  get size(): number {
    return this.items.length;
  }

  peekTime(): number {
    return this.items.length ? this.items[0]!.e.t : Infinity;
  }

  push(e: T): void {
    const items = this.items;
    const node = { e, seq: this.seq++ };
    let i = items.length;
    items.push(node);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(node, items[p]!)) break;
      items[i] = items[p]!;
      i = p;
    }
    items[i] = node;
  }

  pop(): T | undefined {
    const items = this.items;
    if (!items.length) return undefined;
    const top = items[0]!;
    const last = items.pop()!;
    if (items.length) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= items.length) break;
        const r = l + 1;
        const c = r < items.length && before(items[r]!, items[l]!) ? r : l;
        if (!before(items[c]!, last)) break;
        items[i] = items[c]!;
        i = c;
      }
      items[i] = last;
    }
    return top.e;
  }
}

function before(a: { e: Timed; seq: number }, b: { e: Timed; seq: number }): boolean {
  return a.e.t < b.e.t || (a.e.t === b.e.t && a.seq < b.seq);
}
