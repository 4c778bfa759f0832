import { BranchlineError } from '../core/errors.js';
import type { EffectiveAt } from '../mapping/analyze.js';

/**
 * When a down row takes effect, from the text PostgreSQL gives for its
 * `effective_at` column (ISO DateStyle): a timestamptz carries its offset; a
 * timestamp or date is a wall-clock time in the store's time zone. Times are
 * kept in milliseconds (microseconds are dropped). `infinity` never comes
 * due; `-infinity` is always past.
 */

const TEXT = /^(\d{4,})-(\d\d)-(\d\d)(?:[ T](\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?)?\s*(?:(Z)|([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?)?$/;

export class StoreZone {
  private readonly format: Intl.DateTimeFormat;

  /** Throws a RangeError for a zone name the runtime does not know. */
  constructor(readonly name: string) {
    this.format = new Intl.DateTimeFormat('en-US', {
      timeZone: name,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
  }

  /** The zone's offset from UTC at instant `ms`, in ms. */
  offsetAt(ms: number): number {
    const p: Record<string, number> = {};
    for (const part of this.format.formatToParts(new Date(ms))) if (part.type !== 'literal') p[part.type] = Number(part.value);
    const asUtc = Date.UTC(p['year']!, p['month']! - 1, p['day']!, p['hour']!, p['minute']!, p['second']!);
    return asUtc - (ms - (((ms % 1000) + 1000) % 1000));
  }

  /** The instant of a wall-clock time (given as if it were UTC) in this zone. */
  instantOf(wallMs: number): number {
    const first = wallMs - this.offsetAt(wallMs);
    return wallMs - this.offsetAt(first);
  }
}

/** The instant (ms since 1970, or ±Infinity) of an effective_at value, or null for SQL NULL. Throws BL-M015 for text that is not a time. */
export function effectiveInstant(value: string | null | undefined, eff: EffectiveAt, zone: StoreZone, mapping: string): number | null {
  if (value === null || value === undefined) return null;
  const text = value.trim();
  if (text === 'infinity') return Number.POSITIVE_INFINITY;
  if (text === '-infinity') return Number.NEGATIVE_INFINITY;
  const m = TEXT.exec(text);
  if (!m) {
    throw new BranchlineError({
      code: 'BL-M015',
      message: `${mapping}: effective_at column "${eff.column}" holds ${JSON.stringify(value)}, which is not a time branchline can read.`,
      hint: 'HQ writes the change log with DateStyle ISO (the default): check the session settings of the program that writes this table at HQ.',
    });
  }
  const frac = m[7] ? Number(`0.${m[7]}`) * 1000 : 0;
  const wall = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0)) + Math.floor(frac);
  if (m[8]) return wall;
  if (m[9]) {
    const sign = m[9] === '-' ? -1 : 1;
    return wall - sign * ((Number(m[10]) * 60 + Number(m[11] ?? 0)) * 60 + Number(m[12] ?? 0)) * 1000;
  }
  return zone.instantOf(wall);
}

/** An instant as the text a timestamptz column reads back exactly. */
export function instantText(ms: number): string {
  if (ms === Number.POSITIVE_INFINITY) return 'infinity';
  if (ms === Number.NEGATIVE_INFINITY) return '-infinity';
  return new Date(ms).toISOString();
}
