import {
  absDecimal,
  formatDecimal,
  isZeroDecimal,
  parseDecimal,
  roundDecimal,
} from './decimal.js';
import {
  charLength,
  comparator,
  charSlice,
  decimalOf,
  fill,
  intArg,
  quoteValue,
  RowEvalError,
  type Eval,
} from './runtime.js';
import { comparable, datePart, describeType, isNumberType, isOpen, parseBoolean, T, unify, type ExprType } from './types.js';

/** A complaint about one argument of a call, found before any row is read. */
export interface ArgProblem {
  readonly argIndex: number;
  readonly message: string;
  readonly hint: string;
}

/**
 * One function of the expression language: its static typing and how to
 * build its closure. Unless `nullTolerant` is set, a null argument gives null.
 */
export interface FunctionDef {
  readonly name: string;
  /** How to call it, for messages and docs: `substr(text, start[, length])`. */
  readonly signature: string;
  readonly minArgs: number;
  readonly maxArgs: number;
  /**
   * Arguments whose text constants are read as the type of the others
   * (coalesce). The checker does that before calling `check`.
   */
  readonly unifiesArgs?: boolean;
  /** Reads the pipeline's context (not only its arguments): never folded to a constant. */
  readonly contextual?: boolean;
  check(args: readonly ExprType[]): ExprType | ArgProblem;
  build(args: readonly Eval[], types: readonly ExprType[]): Eval;
}

const MAX_PAD = 1_000_000;

type ArgKind = 'any' | 'number' | 'whole';

const ORDINALS = ['1st', '2nd', '3rd'];
function ordinal(i: number): string {
  return ORDINALS[i] ?? `${i + 1}th`;
}

function expectArgs(name: string, types: readonly ExprType[], kinds: readonly ArgKind[]): ArgProblem | null {
  for (let i = 0; i < types.length; i++) {
    const t = types[i]!;
    const kind = kinds[Math.min(i, kinds.length - 1)]!;
    if (isOpen(t) || kind === 'any') continue;
    if (kind === 'number' && !isNumberType(t)) {
      return {
        argIndex: i,
        message: `the ${ordinal(i)} argument of ${name} must be a number, but it is ${describeType(t)}`,
        hint: t.category === 'text' ? `Convert it with numeric(...) first, e.g. ${name}(numeric(x)).` : 'Pass a numeric column or a number.',
      };
    }
    if (kind === 'whole' && t.category !== 'integer') {
      return {
        argIndex: i,
        message: `the ${ordinal(i)} argument of ${name} must be a whole number, but it is ${describeType(t)}`,
        hint: isNumberType(t) ? 'Wrap it in round(...).' : 'Write a whole number such as 3, or wrap it in integer(...).',
      };
    }
  }
  return null;
}

/** A function of fixed argument kinds and result type. */
function simple(
  name: string,
  signature: string,
  kinds: readonly ArgKind[],
  minArgs: number,
  result: ExprType | ((args: readonly ExprType[]) => ExprType),
  build: (args: readonly Eval[], types: readonly ExprType[]) => Eval,
): FunctionDef {
  return {
    name,
    signature,
    minArgs,
    maxArgs: kinds.length,
    check: (args) => expectArgs(name, args, kinds) ?? (typeof result === 'function' ? result(args) : result),
    build,
  };
}

// Null-propagating wrappers: the closure only calls `f` when no argument is null.
function strict1(a: Eval, f: (x: string) => string | null): Eval {
  return (r, c) => {
    const x = a(r, c);
    return x === null ? null : f(x);
  };
}
function strict2(a: Eval, b: Eval, f: (x: string, y: string) => string | null): Eval {
  return (r, c) => {
    const x = a(r, c);
    const y = b(r, c);
    return x === null || y === null ? null : f(x, y);
  };
}
function strict3(a: Eval, b: Eval, d: Eval, f: (x: string, y: string, z: string) => string | null): Eval {
  return (r, c) => {
    const x = a(r, c);
    const y = b(r, c);
    const z = d(r, c);
    return x === null || y === null || z === null ? null : f(x, y, z);
  };
}

function arg(args: readonly Eval[], i: number): Eval {
  const a = args[i];
  if (!a) throw new Error(`internal: missing argument ${i}`);
  return a;
}

function trimChars(s: string, chars: string, left: boolean, right: boolean): string {
  let start = 0;
  let end = s.length;
  if (left) while (start < end && chars.includes(s[start]!)) start++;
  if (right) while (end > start && chars.includes(s[end - 1]!)) end--;
  return s.slice(start, end);
}

function trimDef(name: string, left: boolean, right: boolean): FunctionDef {
  return simple(name, `${name}(text[, characters])`, ['any', 'any'], 1, T.text, (args) =>
    args.length === 1
      ? strict1(arg(args, 0), (s) => trimChars(s, ' ', left, right))
      : strict2(arg(args, 0), arg(args, 1), (s, chars) => trimChars(s, chars, left, right)),
  );
}

function padDef(name: 'lpad' | 'rpad'): FunctionDef {
  const pad = (s: string, n: number, with_: string): string => {
    if (n > MAX_PAD) throw new RowEvalError(`${name} was asked for ${n} characters`, `Pad to at most ${MAX_PAD} characters.`);
    const len = charLength(s);
    if (n <= len) return charSlice(s, 0, Math.max(n, 0));
    if (with_ === '') return s;
    const extra = fill(with_, n - len);
    return name === 'lpad' ? extra + s : s + extra;
  };
  return simple(name, `${name}(text, length[, fill])`, ['any', 'whole', 'any'], 2, T.text, (args) =>
    args.length === 2
      ? strict2(arg(args, 0), arg(args, 1), (s, n) => pad(s, intArg(n, `${name} length`), ' '))
      : strict3(arg(args, 0), arg(args, 1), arg(args, 2), (s, n, f) => pad(s, intArg(n, `${name} length`), f)),
  );
}

function substr(s: string, start: number, count: number | null): string {
  if (count !== null && count < 0) {
    throw new RowEvalError('substr was given a negative length', 'Make sure the length is 0 or more.');
  }
  const from = Math.max(start, 1);
  const to = count === null ? undefined : start + count;
  if (to !== undefined && to <= from) return '';
  return charSlice(s, from - 1, to === undefined ? undefined : to - 1);
}

function leftRight(name: 'left' | 'right'): FunctionDef {
  return simple(name, `${name}(text, n)`, ['any', 'whole'], 2, T.text, (args) =>
    strict2(arg(args, 0), arg(args, 1), (s, nText) => {
      const n = intArg(nText, `${name} count`);
      const len = charLength(s);
      if (name === 'left') return n >= 0 ? charSlice(s, 0, n) : charSlice(s, 0, Math.max(len + n, 0));
      return n >= 0 ? charSlice(s, Math.max(len - n, 0)) : charSlice(s, Math.min(-n, len));
    }),
  );
}

function toInteger(v: string, fromBoolean: boolean): string {
  if (fromBoolean) {
    const b = parseBoolean(v);
    if (b) return b === 't' ? '1' : '0';
  }
  const d = parseDecimal(v);
  if (d === null) {
    throw new RowEvalError(`integer() cannot convert ${quoteValue(v)}: it is not a number`, 'Guard it, e.g. case when ... then integer(x) end, or fix the value at the source.');
  }
  return formatDecimal(roundDecimal(d, 0));
}

function toBoolean(v: string, fromNumber: boolean): string {
  if (fromNumber) {
    const d = parseDecimal(v);
    if (d) return isZeroDecimal(d) ? 'f' : 't';
  }
  const b = parseBoolean(v);
  if (b === null) {
    throw new RowEvalError(
      `boolean() cannot convert ${quoteValue(v)}: it is not one of t/f, true/false, yes/no, on/off, 1/0`,
      "Compare the value instead, e.g. x = 'S'.",
    );
  }
  return b;
}

function convertible(name: string, accepted: readonly string[]): (args: readonly ExprType[]) => ArgProblem | null {
  return (args) => {
    const t = args[0]!;
    if (isOpen(t) || accepted.includes(t.category)) return null;
    return {
      argIndex: 0,
      message: `${name}() cannot convert ${describeType(t)}`,
      hint: `${name}() accepts ${accepted.join(', ')}.`,
    };
  };
}

function conversion(name: string, accepted: readonly string[], result: ExprType, build: FunctionDef['build']): FunctionDef {
  const accept = convertible(name, accepted);
  return { name, signature: `${name}(value)`, minArgs: 1, maxArgs: 1, check: (args) => accept(args) ?? result, build };
}

const DEFS: FunctionDef[] = [
  {
    name: 'commit_time',
    signature: 'commit_time()',
    minArgs: 0,
    maxArgs: 0,
    contextual: true,
    check: () => ({ category: 'timestamptz' }),
    build: () => (_r, c) => (c.commitTime ? c.commitTime.toISOString() : null),
  },
  simple('upper', 'upper(text)', ['any'], 1, T.text, (a) => strict1(arg(a, 0), (s) => s.toUpperCase())),
  simple('lower', 'lower(text)', ['any'], 1, T.text, (a) => strict1(arg(a, 0), (s) => s.toLowerCase())),
  trimDef('trim', true, true),
  trimDef('ltrim', true, false),
  trimDef('rtrim', false, true),
  simple('length', 'length(text)', ['any'], 1, T.integer, (a) => strict1(arg(a, 0), (s) => String(charLength(s)))),
  simple('substr', 'substr(text, start[, length])', ['any', 'whole', 'whole'], 2, T.text, (a) =>
    a.length === 2
      ? strict2(arg(a, 0), arg(a, 1), (s, start) => substr(s, intArg(start, 'substr start'), null))
      : strict3(arg(a, 0), arg(a, 1), arg(a, 2), (s, start, n) => substr(s, intArg(start, 'substr start'), intArg(n, 'substr length'))),
  ),
  simple('replace', 'replace(text, from, to)', ['any', 'any', 'any'], 3, T.text, (a) =>
    strict3(arg(a, 0), arg(a, 1), arg(a, 2), (s, from, to) => (from === '' ? s : s.split(from).join(to))),
  ),
  leftRight('left'),
  leftRight('right'),
  padDef('lpad'),
  padDef('rpad'),
  {
    name: 'concat',
    signature: 'concat(value, ...)',
    minArgs: 1,
    maxArgs: Infinity,
    check: () => T.text,
    build: (args) => (r, c) => {
      let out = '';
      for (let i = 0; i < args.length; i++) {
        const v = args[i]!(r, c);
        if (v !== null) out += v;
      }
      return out;
    },
  },
  {
    name: 'coalesce',
    signature: 'coalesce(value, ...)',
    minArgs: 1,
    maxArgs: Infinity,
    unifiesArgs: true,
    check: (args) => {
      const u = unify(args);
      if (u) return u;
      return {
        argIndex: args.findIndex((t, i) => i > 0 && unify(args.slice(0, i + 1)) === null),
        message: `the arguments of coalesce have different types (${args.map(describeType).join(', ')})`,
        hint: 'Give them one type, e.g. convert with text(...), integer(...) or numeric(...).',
      };
    },
    build: (args) => (r, c) => {
      for (let i = 0; i < args.length; i++) {
        const v = args[i]!(r, c);
        if (v !== null) return v;
      }
      return null;
    },
  },
  {
    name: 'nullif',
    signature: 'nullif(value, other)',
    minArgs: 2,
    maxArgs: 2,
    check: (args) =>
      comparable(args[0]!, args[1]!)
        ? args[0]!
        : {
            argIndex: 1,
            message: `nullif cannot compare ${describeType(args[0]!)} with ${describeType(args[1]!)}`,
            hint: 'Give both arguments the same type, e.g. convert with text(...) or numeric(...).',
          },
    build: (args, types) => {
      const compare = comparator(types[0]!, types[1]!);
      const a = arg(args, 0);
      const b = arg(args, 1);
      return (r, c) => {
        const x = a(r, c);
        if (x === null) return null;
        const y = b(r, c);
        return y !== null && compare(x, y) === 0 ? null : x;
      };
    },
  },
  simple('round', 'round(number[, digits])', ['number', 'whole'], 1, (args) => (args.length === 1 ? T.integer : T.numeric), (a) =>
    a.length === 1
      ? strict1(arg(a, 0), (x) => formatDecimal(roundDecimal(decimalOf(x, 'round'), 0)))
      : strict2(arg(a, 0), arg(a, 1), (x, digits) => {
          const n = intArg(digits, 'round digits');
          if (Math.abs(n) > 1000) throw new RowEvalError('round() was asked for more than 1000 digits', 'Use fewer digits.');
          return formatDecimal(roundDecimal(decimalOf(x, 'round'), n));
        }),
  ),
  simple('abs', 'abs(number)', ['number'], 1, (args) => (isOpen(args[0]!) ? T.numeric : args[0]!), (a) =>
    strict1(arg(a, 0), (x) => formatDecimal(absDecimal(decimalOf(x, 'abs')))),
  ),
  conversion('text', ['integer', 'numeric', 'float', 'text', 'boolean', 'date', 'timestamp', 'timestamptz', 'time', 'interval', 'json', 'uuid', 'other'], T.text, (a) => arg(a, 0)),
  conversion('integer', ['integer', 'numeric', 'float', 'text', 'boolean'], T.integer, (a, types) => {
    const fromBoolean = types[0]!.category === 'boolean' || types[0]!.category === 'unknown';
    return strict1(arg(a, 0), (v) => toInteger(v, fromBoolean));
  }),
  conversion('numeric', ['integer', 'numeric', 'float', 'text'], T.numeric, (a) =>
    strict1(arg(a, 0), (v) => formatDecimal(decimalOf(v, 'numeric()'))),
  ),
  conversion('date', ['date', 'timestamp', 'timestamptz', 'text'], T.date, (a) =>
    strict1(arg(a, 0), (v) => {
      const d = datePart(v);
      if (d === null) {
        throw new RowEvalError(`date() cannot convert ${quoteValue(v)}: it is not a date or timestamp`, 'Dates are read as YYYY-MM-DD, optionally followed by a time.');
      }
      return d;
    }),
  ),
  conversion('boolean', ['boolean', 'text', 'integer'], T.boolean, (a, types) => {
    const fromNumber = types[0]!.category === 'integer' || types[0]!.category === 'unknown';
    return strict1(arg(a, 0), (v) => toBoolean(v, fromNumber));
  }),
];

/** Every function, by lower-case name. */
export const FUNCTIONS: ReadonlyMap<string, FunctionDef> = new Map(DEFS.map((d) => [d.name, d]));

export function argCountText(def: FunctionDef): string {
  if (def.maxArgs === Infinity) return `${def.minArgs} or more arguments`;
  if (def.minArgs === def.maxArgs) return def.minArgs === 1 ? '1 argument' : `${def.minArgs} arguments`;
  if (def.maxArgs === def.minArgs + 1) return `${def.minArgs} or ${def.maxArgs} arguments`;
  return `${def.minArgs} to ${def.maxArgs} arguments`;
}
