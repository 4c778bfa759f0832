import type { PositionCodec } from '../../src/core/position.js';
import { SlotPosition } from '../../src/core/slot-position.js';

/**
 * Positions of the `pg-logical` connector: the end LSN of the last applied
 * commit, with an initial load's snapshot until the stream has passed it
 * (see SlotPosition). Plain LSNs stored before initial loads existed parse
 * as they are.
 */
export const LSN_CODEC: PositionCodec<SlotPosition> = {
  kind: 'pg-lsn',
  parse: (text) => SlotPosition.parse(text),
  format: (p) => p.toString(),
  compare: (a, b) => a.compare(b),
};
