import type pg from 'pg';

/** One reading of a server's clock: our clock before and after the query, and the server's answer (ms since the epoch). */
export interface ClockSample {
  readonly sentAt: number;
  readonly receivedAt: number;
  readonly serverAt: number;
}

/** The skew of a store's clock from HQ's, as far as two readings can tell. */
export interface ClockSkew {
  /** Store clock minus HQ clock, ms (positive: the store is ahead). */
  readonly skewMs: number;
  /** How far off that may be: half of each round trip (the server read its clock somewhere inside it). */
  readonly uncertaintyMs: number;
}

/**
 * Each server's offset from our clock is its answer minus the middle of the
 * round trip; the store's skew from HQ is the difference of the two offsets,
 * and the two half round trips bound the error (our own clock cancels out).
 */
export function clockSkew(store: ClockSample, hq: ClockSample): ClockSkew {
  const offset = (s: ClockSample) => s.serverAt - (s.sentAt + s.receivedAt) / 2;
  const half = (s: ClockSample) => Math.max(0, s.receivedAt - s.sentAt) / 2;
  return { skewMs: offset(store) - offset(hq), uncertaintyMs: half(store) + half(hq) };
}

/** Whether the skew is surely beyond `limitMs` (taking the uncertainty in its favour). */
export function skewBeyond(s: ClockSkew, limitMs: number): boolean {
  return Math.abs(s.skewMs) - s.uncertaintyMs > limitMs;
}

/** Reads a PostgreSQL server's clock_timestamp() with the round trip around it. */
export async function readClock(db: pg.Client): Promise<ClockSample> {
  const sentAt = Date.now();
  const r = await db.query<{ ms: string }>(`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::text AS ms`);
  const receivedAt = Date.now();
  return { sentAt, receivedAt, serverAt: Number(r.rows[0]!.ms) };
}
