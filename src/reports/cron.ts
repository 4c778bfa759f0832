import { StoreZone } from '../schedule/effective-time.js';

/**
 * Cron expressions for the scheduled report: five fields, `minute hour
 * day-of-month month day-of-week`, each `*`, a number, a range `a-b`, a step
 * `*\/n` or `a-b/n`, or a comma list of those; months and days may be named
 * (`jan`, `mon`); day-of-week 0 and 7 are Sunday. As in Vixie cron, when
 * both day fields are restricted a day matching either runs. Times are wall
 * times in a time zone: a time that a daylight-saving change skips does not
 * run that day, and one it repeats runs once (the first).
 */
export interface CronSchedule {
  readonly text: string;
  /** The first run strictly after `after`. */
  next(after: Date): Date;
}

const FIELDS = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'] },
  { name: 'day of week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
] as const;

export class CronError extends Error {}

function parseField(text: string, f: (typeof FIELDS)[number]): { values: Set<number>; any: boolean } {
  const values = new Set<number>();
  const names: readonly string[] = 'names' in f ? f.names : [];
  const num = (s: string): number => {
    const byName = names.indexOf(s.toLowerCase());
    if (byName >= 0) return byName + (f.name === 'month' ? 1 : 0);
    if (!/^\d+$/.test(s)) throw new CronError(`"${s}" is not a ${f.name}`);
    const n = Number(s);
    if (n < f.min || n > f.max) throw new CronError(`${f.name} ${n} is outside ${f.min}-${f.max}`);
    return n;
  };
  for (const part of text.split(',')) {
    const m = /^([^/]+)(?:\/(\d+))?$/.exec(part);
    if (!m) throw new CronError(`"${part}" is not a ${f.name} (write e.g. 5, 1-5, */15 or 1,15)`);
    const step = m[2] === undefined ? 1 : Number(m[2]);
    if (step < 1) throw new CronError(`the step in "${part}" must be at least 1`);
    let from: number;
    let to: number;
    if (m[1] === '*') [from, to] = [f.min, f.max];
    else if (m[1]!.includes('-')) {
      const [a, b] = m[1]!.split('-') as [string, string];
      [from, to] = [num(a), num(b)];
      if (from > to) throw new CronError(`the range "${m[1]}" runs backwards`);
    } else {
      from = num(m[1]!);
      to = m[2] === undefined ? from : f.max;
    }
    for (let v = from; v <= to; v += step) values.add(f.name === 'day of week' && v === 7 ? 0 : v);
  }
  return { values, any: text === '*' };
}

/** Parses `text`; throws a CronError with a sentence naming the field. */
export function parseCron(text: string, timeZone: string): CronSchedule {
  const zone = new StoreZone(timeZone);
  const parts = text.trim().split(/\s+/);
  if (parts.length !== 5) throw new CronError(`"${text}" has ${parts.length} fields, not 5 (minute hour day-of-month month day-of-week, e.g. "0 7 * * *")`);
  const [minute, hour, dom, month, dow] = parts.map((p, i) => parseField(p, FIELDS[i]!)) as [ReturnType<typeof parseField>, ReturnType<typeof parseField>, ReturnType<typeof parseField>, ReturnType<typeof parseField>, ReturnType<typeof parseField>];
  const minutes = [...minute.values].sort((a, b) => a - b);
  const hours = [...hour.values].sort((a, b) => a - b);
  const dayMatches = (y: number, m: number, d: number): boolean => {
    if (!month.values.has(m)) return false;
    const weekday = new Date(Date.UTC(y, m - 1, d)).getUTCDay();
    if (dom.any && dow.any) return true;
    if (dom.any) return dow.values.has(weekday);
    if (dow.any) return dom.values.has(d);
    return dom.values.has(d) || dow.values.has(weekday);
  };
  return {
    text,
    next(after: Date): Date {
      const start = wallTime(after, zone);
      // Up to eight years ahead: "0 0 29 2 *" waits for a leap year.
      for (let day = 0; day < 366 * 8; day++) {
        const date = new Date(Date.UTC(start.y, start.m - 1, start.d + day));
        const [y, m, d] = [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate()];
        if (!dayMatches(y, m, d)) continue;
        for (const h of hours)
          for (const mi of minutes) {
            const t = fromWallTime(y, m, d, h, mi, zone);
            if (t !== null && t.getTime() > after.getTime()) return t;
          }
      }
      throw new CronError(`"${text}" never runs`);
    },
  };
}

/** Wall-clock fields of an instant in a zone. */
function wallTime(t: Date, zone: StoreZone): { y: number; m: number; d: number; h: number; mi: number } {
  const w = new Date(t.getTime() + zone.offsetAt(t.getTime()));
  return { y: w.getUTCFullYear(), m: w.getUTCMonth() + 1, d: w.getUTCDate(), h: w.getUTCHours(), mi: w.getUTCMinutes() };
}

/** The instant whose wall time in the zone is the one given (the first of two in a repeated hour), or null when the zone skips it. */
function fromWallTime(y: number, m: number, d: number, h: number, mi: number, zone: StoreZone): Date | null {
  const wall = Date.UTC(y, m - 1, d, h, mi);
  // The offsets a day either side bracket any change; the earlier instant first.
  const candidates = [wall - zone.offsetAt(wall - 86_400_000), wall - zone.offsetAt(wall + 86_400_000)].sort((a, b) => a - b);
  for (const c of candidates) if (c + zone.offsetAt(c) === wall) return new Date(c);
  return null;
}
