import type { Expr } from './ast.js';
import type { CheckedExpr } from './check.js';
import {
  addDecimal,
  divideDecimal,
  formatDecimal,
  multiplyDecimal,
  negateDecimal,
  subtractDecimal,
  type Decimal,
} from './decimal.js';
import { FUNCTIONS } from './functions.js';
import { comparator, decimalOf, RowEvalError, truth, type Eval } from './runtime.js';
import { T } from './types.js';

/**
 * Turns a checked expression into a closure, once. Constant sub-expressions
 * are computed here, not per row; a bare column is a single property read.
 * Call only on expressions whose check found no issues.
 */
export function compileExpression(checked: CheckedExpr): Eval {
  return new Compiler(checked).compile(checked.expr).fn;
}

interface Compiled {
  readonly fn: Eval;
  /** Reads neither the row nor the context. */
  readonly constant: boolean;
}

const EMPTY_ROW = Object.freeze({});
const NO_CONTEXT = Object.freeze({ storeCode: '' });

const ARITHMETIC: Record<'+' | '-' | '*', (a: Decimal, b: Decimal) => Decimal> = {
  '+': addDecimal,
  '-': subtractDecimal,
  '*': multiplyDecimal,
};

const COMPARISON: Record<'=' | '<>' | '<' | '<=' | '>' | '>=', (c: number) => boolean> = {
  '=': (c) => c === 0,
  '<>': (c) => c !== 0,
  '<': (c) => c < 0,
  '<=': (c) => c <= 0,
  '>': (c) => c > 0,
  '>=': (c) => c >= 0,
};

class Compiler {
  constructor(private readonly checked: CheckedExpr) {}

  compile(e: Expr): Compiled {
    const c = this.node(e);
    if (!c.constant) return c;
    // Fold: compute once. If it fails (1 / 0), keep failing per row, where the error is reported.
    try {
      const value = c.fn(EMPTY_ROW, NO_CONTEXT);
      return { fn: () => value, constant: true };
    } catch (err) {
      if (err instanceof RowEvalError) return c;
      throw err;
    }
  }

  private type(e: Expr) {
    return this.checked.types.get(e) ?? T.unknown;
  }

  private node(e: Expr): Compiled {
    switch (e.kind) {
      case 'literal': {
        const value = this.checked.literals.get(e) ?? e.value;
        return { fn: () => value, constant: true };
      }
      case 'column': {
        const name = e.name;
        return {
          fn: (row) => {
            const v = row[name];
            return v === undefined ? null : v;
          },
          constant: false,
        };
      }
      case 'store-code':
        return { fn: (_row, ctx) => ctx.storeCode, constant: false };
      case 'negate': {
        const a = this.compile(e.arg);
        const fn: Eval = (r, c) => {
          const v = a.fn(r, c);
          return v === null ? null : formatDecimal(negateDecimal(decimalOf(v, 'minus')));
        };
        return { fn, constant: a.constant };
      }
      case 'not': {
        const a = this.compile(e.arg);
        const fn: Eval = (r, c) => {
          const v = a.fn(r, c);
          return v === null ? null : truth(v, 'not') ? 'f' : 't';
        };
        return { fn, constant: a.constant };
      }
      case 'is-null': {
        const a = this.compile(e.arg);
        const negated = e.negated;
        return { fn: (r, c) => ((a.fn(r, c) === null) !== negated ? 't' : 'f'), constant: a.constant };
      }
      case 'binary':
        return this.binary(e);
      case 'call': {
        const def = FUNCTIONS.get(e.name.toLowerCase());
        if (!def) throw new Error(`internal: unknown function ${e.name} reached the compiler`);
        const args = e.args.map((a) => this.compile(a));
        return {
          fn: def.build(
            args.map((a) => a.fn),
            e.args.map((a) => this.type(a)),
          ),
          constant: def.contextual !== true && args.every((a) => a.constant),
        };
      }
      case 'case': {
        const whens = e.whens.map((w) => ({ when: this.compile(w.when), then: this.compile(w.then) }));
        const otherwise = e.otherwise ? this.compile(e.otherwise) : null;
        const conds = whens.map((w) => w.when.fn);
        const thens = whens.map((w) => w.then.fn);
        const elseFn = otherwise?.fn ?? null;
        const fn: Eval = (r, c) => {
          for (let i = 0; i < conds.length; i++) {
            const v = conds[i]!(r, c);
            if (v !== null && truth(v, 'case when')) return thens[i]!(r, c);
          }
          return elseFn === null ? null : elseFn(r, c);
        };
        const constant = whens.every((w) => w.when.constant && w.then.constant) && (otherwise?.constant ?? true);
        return { fn, constant };
      }
    }
  }

  private binary(e: Extract<Expr, { kind: 'binary' }>): Compiled {
    const l = this.compile(e.left);
    const r = this.compile(e.right);
    const a = l.fn;
    const b = r.fn;
    const constant = l.constant && r.constant;
    let fn: Eval;
    switch (e.op) {
      case 'and':
        fn = (row, c) => {
          const x = a(row, c);
          if (x !== null && !truth(x, 'and')) return 'f';
          const y = b(row, c);
          if (y !== null && !truth(y, 'and')) return 'f';
          return x === null || y === null ? null : 't';
        };
        break;
      case 'or':
        fn = (row, c) => {
          const x = a(row, c);
          if (x !== null && truth(x, 'or')) return 't';
          const y = b(row, c);
          if (y !== null && truth(y, 'or')) return 't';
          return x === null || y === null ? null : 'f';
        };
        break;
      case '||':
        fn = (row, c) => {
          const x = a(row, c);
          if (x === null) return null;
          const y = b(row, c);
          return y === null ? null : x + y;
        };
        break;
      case '/':
        fn = (row, c) => {
          const x = a(row, c);
          const y = x === null ? null : b(row, c);
          if (x === null || y === null) return null;
          const q = divideDecimal(decimalOf(x, 'division'), decimalOf(y, 'division'));
          if (q === null) {
            throw new RowEvalError('division by zero', 'Guard the divisor: x / nullif(y, 0) gives null instead of failing.');
          }
          return formatDecimal(q);
        };
        break;
      case '+':
      case '-':
      case '*': {
        const op = ARITHMETIC[e.op];
        const what = e.op === '*' ? 'multiplication' : e.op === '+' ? 'addition' : 'subtraction';
        fn = (row, c) => {
          const x = a(row, c);
          const y = x === null ? null : b(row, c);
          return x === null || y === null ? null : formatDecimal(op(decimalOf(x, what), decimalOf(y, what)));
        };
        break;
      }
      default: {
        const test = COMPARISON[e.op];
        const compare = comparator(this.type(e.left), this.type(e.right));
        fn = (row, c) => {
          const x = a(row, c);
          const y = x === null ? null : b(row, c);
          return x === null || y === null ? null : test(compare(x, y)) ? 't' : 'f';
        };
        break;
      }
    }
    return { fn, constant };
  }
}
