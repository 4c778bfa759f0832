import type { RowValues } from '../../core/change.js';
import type { MappingContext } from '../mapping.js';
import { compareDecimal, parseDecimal, type Decimal } from './decimal.js';
import { isNumberType, type ExprType } from './types.js';

/**
 * A compiled expression: reads the row (and the pipeline's context) and
 * returns a value in PostgreSQL text form, or null. It is only called when
 * every column it reads is present in the row (see CompiledColumn).
 */
export type Eval = (row: RowValues, ctx: MappingContext) => string | null;

/**
 * An expression failed on one row (division by zero, text that is not a
 * number, ...). The mapping turns it into a BL-M015 BranchlineError that
 * names the file, the column and the table.
 */
export class RowEvalError extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
    this.name = 'RowEvalError';
  }
}

/** A value quoted for a message, shortened so a long text does not flood a log line. */
export function quoteValue(v: string): string {
  const short = v.length > 40 ? `${v.slice(0, 37)}...` : v;
  return `'${short.replace(/'/g, "''")}'`;
}

export function decimalOf(v: string, what: string): Decimal {
  const d = parseDecimal(v);
  if (d === null) {
    throw new RowEvalError(
      `${quoteValue(v)} is not a number (${what})`,
      'Guard the expression, e.g. case when ... then ... end, or fix the value at the source.',
    );
  }
  return d;
}

/** A whole-number argument (substr start, lpad length, round digits) as a JS number, clamped to a safe range. */
export function intArg(v: string, what: string): number {
  const d = parseDecimal(v);
  if (d === null || d.scale !== 0) {
    throw new RowEvalError(`${quoteValue(v)} is not a whole number (${what})`, 'Pass a whole number, e.g. round(x) or integer(x).');
  }
  const limit = 1_000_000_000n;
  return Number(d.units > limit ? limit : d.units < -limit ? -limit : d.units);
}

export function truth(v: string, what: string): boolean {
  if (v === 't') return true;
  if (v === 'f') return false;
  const lower = v.trim().toLowerCase();
  if (lower === 'true' || lower === 't') return true;
  if (lower === 'false' || lower === 'f') return false;
  throw new RowEvalError(`${quoteValue(v)} is not true or false (${what})`, 'Compare the value instead, e.g. x = 1 or x is not null.');
}

const SURROGATE = /[\uD800-\uDFFF]/;

/** Length in characters (code points), like PostgreSQL's length(). */
export function charLength(s: string): number {
  if (!SURROGATE.test(s)) return s.length;
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Characters [from, to) counted in code points; `to` undefined means to the end. */
export function charSlice(s: string, from: number, to?: number): string {
  if (!SURROGATE.test(s)) return s.slice(from, to);
  return Array.from(s).slice(from, to).join('');
}

/** `s` repeated to exactly `n` characters. */
export function fill(s: string, n: number): string {
  if (n <= 0 || s === '') return '';
  const reps = Math.ceil(n / charLength(s));
  return charSlice(s.repeat(reps), 0, n);
}

/**
 * How two values compare, chosen from their static types: numbers by value
 * (`1.0` = `1`), everything else by its text form (character codes; ISO dates
 * and timestamps order correctly), and values of unknown type by value when
 * both are numbers, else as text.
 */
export function comparator(a: ExprType, b: ExprType): (x: string, y: string) => number {
  const numberOrNull = (t: ExprType): boolean => isNumberType(t) || t.category === 'null';
  if ((isNumberType(a) || isNumberType(b)) && (numberOrNull(a) || a.category === 'unknown') && (numberOrNull(b) || b.category === 'unknown')) {
    return (x, y) => compareDecimal(decimalOf(x, 'comparison'), decimalOf(y, 'comparison'));
  }
  if (a.category === 'unknown' || b.category === 'unknown') {
    return (x, y) => {
      const dx = parseDecimal(x);
      const dy = dx === null ? null : parseDecimal(y);
      return dx !== null && dy !== null ? compareDecimal(dx, dy) : compareText(x, y);
    };
  }
  return compareText;
}

function compareText(x: string, y: string): number {
  return x < y ? -1 : x > y ? 1 : 0;
}
