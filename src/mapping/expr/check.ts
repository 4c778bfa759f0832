import type { ErrorCode } from '../../core/errors.js';
import { didYouMean } from '../suggest.js';
import { ARITHMETIC_OPS, COMPARISON_OPS, walk, type Expr } from './ast.js';
import { argCountText, FUNCTIONS } from './functions.js';
import { coerceLiteral, comparable, describeType, isNumberType, isOpen, T, unify, type ExprType } from './types.js';

/** The source columns an expression may read. */
export interface ColumnScope {
  /** The source table, for messages (`public.sale`). */
  readonly table: string;
  /** The column's type, or undefined when the table has no such column. */
  lookup(name: string): ExprType | undefined;
  readonly names: readonly string[];
}

/** A problem inside an expression, at a character index of its text. */
export interface ExprIssue {
  readonly code: ErrorCode;
  readonly message: string;
  readonly hint: string;
  readonly index: number;
}

/** An expression with its static types, ready to compile (when `issues` is empty). */
export interface CheckedExpr {
  readonly expr: Expr;
  readonly type: ExprType;
  /** Static type of every node. */
  readonly types: ReadonlyMap<Expr, ExprType>;
  /** Text constants read as another type (`'2024-01-01'` as a date, `'yes'` as `t`): their value to use. */
  readonly literals: ReadonlyMap<Expr, string>;
  /** Source columns read, without duplicates, in order of appearance. */
  readonly columns: readonly string[];
  readonly readsStoreCode: boolean;
  readonly issues: readonly ExprIssue[];
}

/**
 * Resolves names and infers types. `scope` null means the source catalog is
 * not available: every name is a column of unknown type. `expected` is the
 * target column's type: text constants at the top (or in case branches and
 * coalesce arguments) are read as that type.
 */
export function checkExpression(expr: Expr, scope: ColumnScope | null, expected?: ExprType): CheckedExpr {
  const c = new Checker(scope);
  const type = c.type(expr, expected);
  return {
    expr,
    type,
    types: c.types,
    literals: c.literals,
    columns: [...c.columns],
    readsStoreCode: c.readsStoreCode,
    issues: c.issues,
  };
}

/** Whether the expression reads nothing from the row (constants and store.code only). */
export function readsNoColumn(e: Expr): boolean {
  let none = true;
  walk(e, (n) => {
    if (n.kind === 'column') none = false;
  });
  return none;
}

function isTextLiteral(e: Expr): boolean {
  return e.kind === 'literal' && e.type === 'text';
}

function quote(v: string): string {
  return `'${v.replace(/'/g, "''")}'`;
}

class Checker {
  readonly types = new Map<Expr, ExprType>();
  readonly literals = new Map<Expr, string>();
  readonly columns = new Set<string>();
  readsStoreCode = false;
  readonly issues: ExprIssue[] = [];

  constructor(private readonly scope: ColumnScope | null) {}

  private issue(code: ErrorCode, index: number, message: string, hint: string): ExprType {
    this.issues.push({ code, index, message, hint });
    return T.unknown;
  }

  type(e: Expr, expected?: ExprType): ExprType {
    const t = this.infer(e, expected);
    this.types.set(e, t);
    return t;
  }

  /** Reads text constants among `exprs` as `to`, reporting those that do not fit. */
  private coerce(exprs: readonly Expr[], to: ExprType): void {
    if (isOpen(to) || to.category === 'text') return;
    for (const e of exprs) {
      if (!isTextLiteral(e) || e.kind !== 'literal') continue;
      const r = coerceLiteral(e.value ?? '', to);
      if (r.ok) {
        this.literals.set(e, r.value);
        this.types.set(e, to);
      } else {
        this.issue(
          'BL-M008',
          e.start,
          `${quote(e.value ?? '')} ${r.why}, but ${describeType(to)} is needed here`,
          `Write a constant of type ${describeType(to)}, or convert the other value with text(...).`,
        );
        this.types.set(e, T.unknown);
      }
    }
  }

  /** Types `exprs` that meet in one place; text constants take the others' type. Null when they do not go together. */
  private unifyAll(exprs: readonly Expr[], expected: ExprType | undefined): { type: ExprType | null; at: number } {
    const nonLiteral = exprs.filter((e) => !isTextLiteral(e));
    let target = unify(nonLiteral.map((e) => this.types.get(e) ?? T.unknown));
    if (target === null) {
      let acc: Expr[] = [];
      for (const e of nonLiteral) {
        acc = [...acc, e];
        if (unify(acc.map((x) => this.types.get(x) ?? T.unknown)) === null) return { type: null, at: e.start };
      }
      return { type: null, at: exprs[0]?.start ?? 0 };
    }
    if (target.category === 'null' && expected && nonLiteral.length < exprs.length) target = expected;
    this.coerce(exprs, target);
    return { type: unify(exprs.map((e) => this.types.get(e) ?? T.unknown)), at: 0 };
  }

  private condition(e: Expr, what: string): void {
    if (isTextLiteral(e)) {
      this.type(e);
      this.coerce([e], T.boolean);
      return;
    }
    const t = this.type(e);
    if (isOpen(t) || t.category === 'boolean') return;
    this.issue(
      'BL-M008',
      e.start,
      `${what} must be true or false, but it is ${describeType(t)}`,
      'Compare it, e.g. x > 0, x = \'S\' or x is not null.',
    );
  }

  private infer(e: Expr, expected: ExprType | undefined): ExprType {
    switch (e.kind) {
      case 'literal':
        if (e.type === 'text' && expected) {
          this.types.set(e, T.text);
          this.coerce([e], expected);
          return this.types.get(e) ?? T.text;
        }
        return T[e.type];
      case 'column':
        return this.column(e);
      case 'store-code':
        this.readsStoreCode = true;
        return T.text;
      case 'negate': {
        const t = this.type(e.arg);
        if (isOpen(t) || isNumberType(t)) return t;
        return this.issue('BL-M008', e.start, `"-" needs a number, but it is ${describeType(t)}`, 'Negate a numeric column or convert it with numeric(...).');
      }
      case 'not':
        this.condition(e.arg, '"not"');
        return T.boolean;
      case 'is-null':
        this.type(e.arg);
        return T.boolean;
      case 'binary':
        return this.binary(e);
      case 'call':
        return this.call(e, expected);
      case 'case': {
        for (const w of e.whens) this.condition(w.when, 'the condition after "when"');
        const values = e.whens.map((w) => w.then);
        if (e.otherwise) values.push(e.otherwise);
        for (const v of values) this.type(v);
        const u = this.unifyAll(values, expected);
        if (u.type === null) {
          return this.issue(
            'BL-M008',
            u.at,
            `the branches of this case give different types (${values.map((v) => describeType(this.types.get(v) ?? T.unknown)).join(', ')})`,
            'Give every branch the same type, e.g. convert with text(...), integer(...) or numeric(...).',
          );
        }
        return u.type;
      }
    }
  }

  private column(e: Extract<Expr, { kind: 'column' }>): ExprType {
    if (this.scope === null) {
      this.columns.add(e.name);
      return T.unknown;
    }
    const t = this.scope.lookup(e.name);
    if (t !== undefined) {
      this.columns.add(e.name);
      return t;
    }
    const near = didYouMean(e.name, this.scope.names);
    return this.issue(
      'BL-M005',
      e.start,
      `unknown source column "${e.name}": table ${this.scope.table} has no such column`,
      near.length > 0
        ? `Did you mean ${near.map((n) => `"${n}"`).join(' or ')}?`
        : `Its columns are: ${this.scope.names.join(', ')}. A text constant is written in single quotes, in YAML inside double quotes: "'text'".`,
    );
  }

  private binary(e: Extract<Expr, { kind: 'binary' }>): ExprType {
    if (e.op === 'and' || e.op === 'or') {
      this.condition(e.left, `the left side of "${e.op}"`);
      this.condition(e.right, `the right side of "${e.op}"`);
      return T.boolean;
    }
    const l = this.type(e.left);
    const r = this.type(e.right);
    if (e.op === '||') return T.text;
    if (ARITHMETIC_OPS.has(e.op)) {
      this.coerceAgainst(e.left, e.right, l, r);
      const lt = this.types.get(e.left) ?? l;
      const rt = this.types.get(e.right) ?? r;
      for (const [side, t] of [[e.left, lt], [e.right, rt]] as const) {
        if (!isOpen(t) && !isNumberType(t)) {
          return this.issue(
            'BL-M008',
            side.start,
            `"${e.op}" needs numbers, but this is ${describeType(t)}`,
            t.category === 'text'
              ? e.op === '+'
                ? 'To join texts use ||, e.g. a || \' \' || b; to add, convert with numeric(...).'
                : 'Convert it with numeric(...) first.'
              : 'Arithmetic works on integer and numeric values only.',
          );
        }
      }
      if (lt.category === 'float' || rt.category === 'float') return T.float;
      if (e.op === '/') return T.numeric;
      if (lt.category === 'unknown' || rt.category === 'unknown') return T.unknown;
      if (lt.category === 'numeric' || rt.category === 'numeric') return T.numeric;
      if (lt.category === 'null') return rt;
      return rt.category === 'null' ? lt : T.integer;
    }
    if (COMPARISON_OPS.has(e.op)) {
      this.coerceAgainst(e.left, e.right, l, r);
      const lt = this.types.get(e.left) ?? l;
      const rt = this.types.get(e.right) ?? r;
      if (!comparable(lt, rt)) {
        this.issue(
          'BL-M008',
          e.opStart,
          `cannot compare ${describeType(lt)} with ${describeType(rt)}`,
          'Convert one side so both have the same type, e.g. text(x), integer(x) or date(x).',
        );
      }
      return T.boolean;
    }
    throw new Error(`internal: operator ${e.op}`);
  }

  /** A text constant on one side of an operator is read as the other side's type. */
  private coerceAgainst(left: Expr, right: Expr, lt: ExprType, rt: ExprType): void {
    if (isTextLiteral(left) && !isTextLiteral(right)) this.coerce([left], rt);
    else if (isTextLiteral(right) && !isTextLiteral(left)) this.coerce([right], lt);
  }

  private call(e: Extract<Expr, { kind: 'call' }>, expected: ExprType | undefined): ExprType {
    const def = FUNCTIONS.get(e.name.toLowerCase());
    const argTypes = e.args.map((a) => this.type(a));
    if (!def) {
      const near = didYouMean(e.name.toLowerCase(), [...FUNCTIONS.keys()]);
      return this.issue(
        'BL-M012',
        e.start,
        `unknown function "${e.name}"`,
        near.length > 0
          ? `Did you mean ${near.map((n) => `${n}(...)`).join(' or ')}?`
          : `The functions are: ${[...FUNCTIONS.keys()].join(', ')}.`,
      );
    }
    if (e.args.length < def.minArgs || e.args.length > def.maxArgs) {
      return this.issue(
        'BL-M007',
        e.start,
        `${def.name} takes ${argCountText(def)}, but ${e.args.length} ${e.args.length === 1 ? 'is' : 'are'} given`,
        `Write ${def.signature}.`,
      );
    }
    let types = argTypes;
    if (def.unifiesArgs) {
      const u = this.unifyAll(e.args, expected);
      if (u.type !== null) types = e.args.map((a) => this.types.get(a) ?? T.unknown);
    } else if (def.name === 'nullif') {
      this.coerceAgainst(e.args[0]!, e.args[1]!, argTypes[0]!, argTypes[1]!);
      types = e.args.map((a) => this.types.get(a) ?? T.unknown);
    }
    const result = def.check(types);
    if ('argIndex' in result) {
      return this.issue('BL-M008', e.args[result.argIndex]?.start ?? e.start, result.message, result.hint);
    }
    return result;
  }
}
