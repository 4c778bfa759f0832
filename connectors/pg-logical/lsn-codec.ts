import { Lsn } from '../../src/core/lsn.js';
import type { PositionCodec } from '../../src/core/position.js';

/** Positions of the `pg-logical` connector: the end LSN of the last applied commit. */
export const LSN_CODEC: PositionCodec<Lsn> = {
  kind: 'pg-lsn',
  parse: (text) => Lsn.parse(text),
  format: (p) => p.toString(),
  compare: (a, b) => a.compare(b),
};
