/**
 * A small exact decimal: `value = units / 10^scale`, with `units` a bigint.
 *
 * Mapping expressions compute on PostgreSQL's text form of integers and
 * numerics; they never go through a JavaScript number, so `0.1 + 0.2` is
 * `0.3` and a 19-digit bigint stays exact. Scales follow PostgreSQL's numeric:
 * `+`/`-` keep the larger scale, `*` adds the scales.
 */
export interface Decimal {
  readonly units: bigint;
  readonly scale: number;
}

/** Largest exponent accepted in `1e…` inputs, so a hostile value cannot allocate a huge bigint. */
const MAX_EXPONENT = 1000;
/** Minimum scale of a division result (PostgreSQL gives at least 16 significant digits). */
export const DIVISION_SCALE = 16;

const DECIMAL_RE = /^\s*([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\s*$/;

const POW10: bigint[] = [];
export function pow10(n: number): bigint {
  if (n < 64) {
    let p = POW10[n];
    if (p === undefined) {
      p = 10n ** BigInt(n);
      POW10[n] = p;
    }
    return p;
  }
  return 10n ** BigInt(n);
}

/**
 * Parses decimal text (`12`, `-0.50`, `1.5e-3`, surrounding blanks allowed).
 * Returns null for anything else, including `NaN` and `Infinity`.
 */
export function parseDecimal(text: string): Decimal | null {
  const m = DECIMAL_RE.exec(text);
  if (!m) return null;
  const sign = m[1];
  const int = m[2] ?? '';
  const frac = m[3] ?? '';
  if (int === '' && frac === '') return null;
  let scale = frac.length;
  let units = BigInt((int || '0') + frac);
  if (m[4] !== undefined) {
    const exp = Number(m[4]);
    if (!Number.isSafeInteger(exp) || Math.abs(exp) > MAX_EXPONENT) return null;
    scale -= exp;
    if (scale < 0) {
      units *= pow10(-scale);
      scale = 0;
    }
  }
  return { units: sign === '-' ? -units : units, scale };
}

export function formatDecimal(d: Decimal): string {
  if (d.scale === 0) return d.units.toString();
  const negative = d.units < 0n;
  const digits = (negative ? -d.units : d.units).toString().padStart(d.scale + 1, '0');
  const cut = digits.length - d.scale;
  return `${negative && d.units !== 0n ? '-' : ''}${digits.slice(0, cut)}.${digits.slice(cut)}`;
}

/** `d` at a larger (or equal) scale. */
function rescale(d: Decimal, scale: number): bigint {
  return scale === d.scale ? d.units : d.units * pow10(scale - d.scale);
}

export function addDecimal(a: Decimal, b: Decimal): Decimal {
  const scale = Math.max(a.scale, b.scale);
  return { units: rescale(a, scale) + rescale(b, scale), scale };
}

export function subtractDecimal(a: Decimal, b: Decimal): Decimal {
  const scale = Math.max(a.scale, b.scale);
  return { units: rescale(a, scale) - rescale(b, scale), scale };
}

export function multiplyDecimal(a: Decimal, b: Decimal): Decimal {
  return { units: a.units * b.units, scale: a.scale + b.scale };
}

export function negateDecimal(a: Decimal): Decimal {
  return { units: -a.units, scale: a.scale };
}

export function absDecimal(a: Decimal): Decimal {
  return a.units < 0n ? { units: -a.units, scale: a.scale } : a;
}

/**
 * `a / b` at scale max(a.scale, b.scale, 16), rounded half to even.
 * Returns null when `b` is zero.
 */
export function divideDecimal(a: Decimal, b: Decimal): Decimal | null {
  if (b.units === 0n) return null;
  const scale = Math.max(a.scale, b.scale, DIVISION_SCALE);
  const numerator = a.units * pow10(scale - a.scale + b.scale);
  return { units: divideHalfEven(numerator, b.units), scale };
}

function divideHalfEven(n: bigint, d: bigint): bigint {
  let q = n / d;
  const r = n % d;
  if (r === 0n) return q;
  const negative = n < 0n !== d < 0n;
  const twiceR = (r < 0n ? -r : r) * 2n;
  const absD = d < 0n ? -d : d;
  if (twiceR > absD || (twiceR === absD && (q & 1n) !== 0n)) q += negative ? -1n : 1n;
  return q;
}

/**
 * Rounds half away from zero (like PostgreSQL's `round(numeric, int)`):
 * the result has scale `digits` (0 when `digits` is negative, e.g.
 * round(1234.5, -2) = 1200).
 */
export function roundDecimal(a: Decimal, digits: number): Decimal {
  const target = Math.max(digits, 0);
  if (digits >= a.scale) return { units: rescale(a, target), scale: target };
  const drop = a.scale - digits; // > 0
  const unit = pow10(drop);
  const negative = a.units < 0n;
  const abs = negative ? -a.units : a.units;
  let q = abs / unit;
  if ((abs % unit) * 2n >= unit) q += 1n;
  if (digits < 0) q *= pow10(-digits);
  return { units: negative ? -q : q, scale: target };
}

export function compareDecimal(a: Decimal, b: Decimal): -1 | 0 | 1 {
  const scale = Math.max(a.scale, b.scale);
  const x = rescale(a, scale);
  const y = rescale(b, scale);
  return x < y ? -1 : x > y ? 1 : 0;
}

export function isZeroDecimal(a: Decimal): boolean {
  return a.units === 0n;
}
