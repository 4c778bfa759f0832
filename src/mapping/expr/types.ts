import type { ColumnInfo, TypeCategory } from '../../catalog/pg-catalog.js';
import { parseDecimal } from './decimal.js';

/**
 * The static type of an expression: a PostgreSQL type category, or
 * - `null`: the `null` literal, which fits anything;
 * - `unknown`: a source column whose type is not known because the store's
 *   catalog was not available; it fits anything and is checked at the row.
 * `typeName` distinguishes arrays and `other` types (e.g. `_int4`, `inet`).
 */
export interface ExprType {
  readonly category: TypeCategory | 'null' | 'unknown';
  readonly typeName?: string;
}

export const T = {
  text: { category: 'text' },
  integer: { category: 'integer' },
  numeric: { category: 'numeric' },
  float: { category: 'float' },
  boolean: { category: 'boolean' },
  date: { category: 'date' },
  null: { category: 'null' },
  unknown: { category: 'unknown' },
} as const satisfies Record<string, ExprType>;

export function columnType(c: ColumnInfo): ExprType {
  return c.category === 'array' || c.category === 'other' ? { category: c.category, typeName: c.typeName } : { category: c.category };
}

/** Words for messages: "integer", "text", "array (_int4)". */
export function describeType(t: ExprType): string {
  if (t.category === 'unknown') return 'of unknown type';
  if (t.category === 'null') return 'null';
  return t.typeName && (t.category === 'array' || t.category === 'other') ? `${t.category} (${t.typeName})` : t.category;
}

export function isNumberType(t: ExprType): boolean {
  return t.category === 'integer' || t.category === 'numeric' || t.category === 'float';
}

/** Null and unknown fit every check; the row decides. */
export function isOpen(t: ExprType): boolean {
  return t.category === 'null' || t.category === 'unknown';
}

/**
 * THE assignability table: which expression categories may be written to a
 * target column of a category without a conversion function. Documented in
 * docs/mapping.md ("Types"); keep the two in step.
 *
 * Extra rules applied in `fits`: `null` and `unknown` fit anything; `array`
 * needs the same array type; `other` needs the same type name (or a text
 * target); text fits an `other` column (PostgreSQL parses its input form).
 */
export const ASSIGNABLE: Readonly<Record<TypeCategory, readonly TypeCategory[]>> = {
  integer: ['integer', 'numeric', 'float', 'text'],
  numeric: ['numeric', 'float', 'text'],
  float: ['float', 'numeric', 'text'],
  text: ['text', 'json', 'other'],
  boolean: ['boolean', 'text'],
  date: ['date', 'timestamp', 'timestamptz', 'text'],
  timestamp: ['timestamp', 'timestamptz', 'text'],
  timestamptz: ['timestamptz', 'timestamp', 'text'],
  time: ['time', 'text'],
  interval: ['interval', 'text'],
  json: ['json', 'text'],
  bytea: ['bytea'],
  uuid: ['uuid', 'text'],
  array: ['array'],
  other: ['other', 'text'],
};

/** Whether a value of type `from` may be written to a column of type `to`. */
export function fits(from: ExprType, to: ExprType): boolean {
  if (isOpen(from) || to.category === 'unknown') return true;
  if (to.category === 'null') return false;
  if (!ASSIGNABLE[from.category as TypeCategory].includes(to.category)) return false;
  if (to.category === 'array') return from.typeName === to.typeName;
  if (from.category === 'other' && to.category === 'other') return from.typeName === to.typeName;
  return true;
}

/** The conversion that makes `from` fit `to`, as advice, or null when there is none. */
export function conversionHint(from: ExprType, to: ExprType): string | null {
  const f = from.category;
  switch (to.category) {
    case 'integer':
      if (f === 'numeric' || f === 'float') return 'Wrap it in round(...) to round it to a whole number (or integer(...)).';
      if (f === 'text') return 'Wrap it in integer(...) if the text always holds a whole number.';
      if (f === 'boolean') return 'Wrap it in integer(...) (true becomes 1, false 0).';
      return null;
    case 'numeric':
    case 'float':
      if (f === 'text') return 'Wrap it in numeric(...) if the text always holds a number.';
      if (f === 'boolean') return 'Wrap it in integer(...) (true becomes 1, false 0).';
      return null;
    case 'boolean':
      if (f === 'text' || f === 'integer') return "Wrap it in boolean(...) (it accepts t/f, true/false, yes/no, 1/0), or compare it, e.g. x = 'Y'.";
      return null;
    case 'date':
      if (f === 'timestamp' || f === 'timestamptz' || f === 'text') return 'Wrap it in date(...) to keep the date part.';
      return null;
    case 'text':
      return null;
    default:
      return null;
  }
}

/**
 * Widest common type of values that meet in one place (case branches,
 * coalesce arguments), or null when they do not go together.
 */
export function unify(types: readonly ExprType[]): ExprType | null {
  let result: ExprType = T.null;
  for (const t of types) {
    if (t.category === 'null') continue;
    if (t.category === 'unknown') return T.unknown;
    if (result.category === 'null') {
      result = t;
      continue;
    }
    if (isNumberType(result) && isNumberType(t)) {
      result = NUMBER_RANK[t.category as 'integer'] > NUMBER_RANK[result.category as 'integer'] ? t : result;
      continue;
    }
    if (result.category !== t.category || result.typeName !== t.typeName) return null;
  }
  return result;
}

const NUMBER_RANK = { integer: 0, numeric: 1, float: 2 } as const;

/** Two types whose values can be compared (=, <, nullif): numbers with numbers, dates and timestamps together, else the same type. */
export function comparable(a: ExprType, b: ExprType): boolean {
  if (isOpen(a) || isOpen(b)) return true;
  if (isNumberType(a) && isNumberType(b)) return true;
  const temporal = (t: ExprType): boolean => t.category === 'date' || t.category === 'timestamp' || t.category === 'timestamptz';
  if (temporal(a) && temporal(b)) return true;
  return a.category === b.category && a.typeName === b.typeName;
}

const BOOLEAN_WORDS: Readonly<Record<string, 't' | 'f'>> = {
  t: 't', true: 't', y: 't', yes: 't', on: 't', '1': 't',
  f: 'f', false: 'f', n: 'f', no: 'f', off: 'f', '0': 'f',
};

/** PostgreSQL's boolean input forms (case-insensitive, blanks trimmed), as `t`/`f`; null otherwise. */
export function parseBoolean(text: string): 't' | 'f' | null {
  return BOOLEAN_WORDS[text.trim().toLowerCase()] ?? null;
}

const DATE_RE = /^\s*(\d{4,})-(\d{2})-(\d{2})(?:( BC)|[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:\s*(?:Z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?))?( BC)?)?\s*$/;

/**
 * The date part of date or timestamp text (`2024-05-01 13:45:00+02` ->
 * `2024-05-01`), checking that the date exists. `infinity`/`-infinity` pass.
 * Returns null for anything else.
 */
export function datePart(text: string): string | null {
  const m = DATE_RE.exec(text);
  if (!m) {
    const t = text.trim().toLowerCase();
    return t === 'infinity' || t === '-infinity' ? t : null;
  }
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  if (month < 1 || month > 12 || day < 1) return null;
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]!;
  if (day > days) return null;
  if (m[5] !== undefined && (Number(m[5]) > 24 || Number(m[6]) > 59 || Number(m[7] ?? 0) > 60)) return null;
  const bc = m[4] ?? m[8] ?? '';
  return `${m[1]}-${m[2]}-${m[3]}${bc}`;
}

const UUID_RE = /^\s*\{?[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\}?\s*$/;

/**
 * A quoted text constant used where another type is expected is read as
 * that type, as PostgreSQL does with `'...'` literals (`coalesce(born_on,
 * '1900-01-01')`). Returns the value to use, or why the text does not fit.
 */
export function coerceLiteral(text: string, to: ExprType): { ok: true; value: string } | { ok: false; why: string } {
  switch (to.category) {
    case 'integer': {
      const d = parseDecimal(text);
      return d && d.scale === 0 ? { ok: true, value: text.trim() } : { ok: false, why: 'is not a whole number' };
    }
    case 'numeric':
    case 'float':
      return parseDecimal(text) ? { ok: true, value: text.trim() } : { ok: false, why: 'is not a number' };
    case 'boolean': {
      const b = parseBoolean(text);
      return b ? { ok: true, value: b } : { ok: false, why: 'is not true or false (write t/f, true/false, yes/no)' };
    }
    case 'date':
      return DATE_ONLY_RE.test(text) && datePart(text) ? { ok: true, value: text } : { ok: false, why: 'is not a date (write YYYY-MM-DD)' };
    case 'timestamp':
    case 'timestamptz':
      return datePart(text) ? { ok: true, value: text } : { ok: false, why: 'is not a timestamp (write YYYY-MM-DD HH:MM:SS)' };
    case 'uuid':
      return UUID_RE.test(text) ? { ok: true, value: text } : { ok: false, why: 'is not a UUID' };
    case 'bytea':
    case 'array':
      return { ok: false, why: `cannot be written as ${describeType(to)} constant` };
    default:
      return { ok: true, value: text };
  }
}

const DATE_ONLY_RE = /^\s*(\d{4,}-\d{2}-\d{2}( BC)?|infinity|-infinity)\s*$/i;
