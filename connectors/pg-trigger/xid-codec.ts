import { PgSnapshot } from '../../src/core/pg-snapshot.js';
import type { PositionCodec } from '../../src/core/position.js';

/**
 * A position in a `pg-trigger` change log. Delivered (applied at the
 * target) is every transaction that logged changes and
 * - whose xid is below `bound`, or
 * - that the initial load's `snapshot` saw (PostgreSQL's pg_snapshot text
 *   `xmin:xmax:xip,...`, kept until `bound` passes its xmax): those are in
 *   the copy, or
 * - that lies in the window being read, [`bound`, `window.until`), and
 *   whose last change in the log has an id at most `window.lastId`: the
 *   reader delivers a window's transactions one by one in the order of
 *   their last change, so a target may commit in the middle of a window.
 *
 * Formatted as the bound (decimal) or the snapshot text, followed by
 * `@until/lastId` while inside a window.
 */
export interface XidPosition {
  readonly bound: bigint;
  readonly snapshot: string | null;
  readonly window?: { readonly until: bigint; readonly lastId: bigint } | null;
}

export function xidPosition(bound: bigint, snapshot: string | null = null): XidPosition {
  return { bound, snapshot };
}

/** The position once a window [p.bound, until) is delivered whole: the snapshot is kept while it can still see xids at or above the bound. */
export function afterWindow(p: XidPosition, until: bigint): XidPosition {
  const snapshot = p.snapshot !== null && until < PgSnapshot.parse(p.snapshot).xmax ? p.snapshot : null;
  return { bound: until, snapshot };
}

const WINDOW = /^(.*)@(\d{1,20})\/(\d{1,20})$/;

function parse(text: string): XidPosition {
  const w = WINDOW.exec(text);
  const head = w ? w[1]! : text;
  let base: XidPosition;
  if (/^\d{1,20}$/.test(head)) base = { bound: BigInt(head), snapshot: null };
  else {
    let snapshot: PgSnapshot;
    try {
      snapshot = PgSnapshot.parse(head);
    } catch {
      throw new Error(`not a pg-trigger position (an xid8 or a pg_snapshot, optionally followed by @until/lastId): ${text}`);
    }
    base = { bound: snapshot.xmin, snapshot: head };
  }
  if (!w) return base;
  const until = BigInt(w[2]!);
  if (until <= base.bound) throw new Error(`not a pg-trigger position: its window ends (${until}) at or before its bound (${base.bound}): ${text}`);
  return { ...base, window: { until, lastId: BigInt(w[3]!) } };
}

export const XID8_CODEC: PositionCodec<XidPosition> = {
  kind: 'pg-xid8',
  parse,
  format: (p) => `${p.snapshot ?? p.bound.toString()}${p.window ? `@${p.window.until}/${p.window.lastId}` : ''}`,
  // By bound; at one bound, further into its window; then a snapshot position is further on (it also covers what the snapshot saw).
  compare: (a, b) => {
    if (a.bound !== b.bound) return a.bound < b.bound ? -1 : 1;
    const la = a.window ? a.window.lastId : -1n;
    const lb = b.window ? b.window.lastId : -1n;
    if (la !== lb) return la < lb ? -1 : 1;
    return (a.snapshot ? 1 : 0) - (b.snapshot ? 1 : 0);
  },
};
