import type { PositionCodec } from '../../src/core/position.js';

/**
 * Positions of the `pg-trigger` connector: a transaction id (xid8) bound.
 * Every change logged by a transaction whose xid is below it has been
 * delivered; nothing at or above it has. Formatted in decimal.
 */
export const XID8_CODEC: PositionCodec<bigint> = {
  kind: 'pg-xid8',
  parse: (text) => {
    if (!/^\d{1,20}$/.test(text)) throw new Error(`not an xid8 position: ${text}`);
    return BigInt(text);
  },
  format: (p) => p.toString(),
  compare: (a, b) => (a < b ? -1 : a > b ? 1 : 0),
};
