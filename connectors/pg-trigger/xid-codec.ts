import { PgSnapshot } from '../../src/core/pg-snapshot.js';
import type { PositionCodec } from '../../src/core/position.js';

/**
 * A position in a `pg-trigger` change log: every change logged by a
 * transaction whose xid is below `bound` has been delivered, nothing at or
 * above it has, except, right after an initial load, the transactions the
 * load's snapshot already saw (`snapshot`, PostgreSQL's pg_snapshot text
 * `xmin:xmax:xip,...`, whose xmin is `bound`): those are in the copy and are
 * never delivered again.
 *
 * Formatted as the decimal bound, or as the snapshot text.
 */
export interface XidPosition {
  readonly bound: bigint;
  readonly snapshot: string | null;
}

export function xidPosition(bound: bigint): XidPosition {
  return { bound, snapshot: null };
}

export const XID8_CODEC: PositionCodec<XidPosition> = {
  kind: 'pg-xid8',
  parse: (text) => {
    if (/^\d{1,20}$/.test(text)) return { bound: BigInt(text), snapshot: null };
    let snapshot: PgSnapshot;
    try {
      snapshot = PgSnapshot.parse(text);
    } catch {
      throw new Error(`not a pg-trigger position (an xid8 or a pg_snapshot): ${text}`);
    }
    return { bound: snapshot.xmin, snapshot: text };
  },
  format: (p) => p.snapshot ?? p.bound.toString(),
  // At one bound, a snapshot position is further on: it also covers what the snapshot saw above it.
  compare: (a, b) => (a.bound < b.bound ? -1 : a.bound > b.bound ? 1 : (a.snapshot ? 1 : 0) - (b.snapshot ? 1 : 0)),
};
