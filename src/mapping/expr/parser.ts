import { COMPARISON_OPS, type BinaryOp, type Expr } from './ast.js';
import { ExprSyntaxError, tokenize, type Token } from './lexer.js';

/**
 * Parses a mapping expression (Pratt parser). Binding powers, loosest first,
 * follow PostgreSQL: or < and < not < is [not] null < comparisons < || <
 * + - < * / < unary minus.
 *
 * Throws ExprSyntaxError with the index of the offending token.
 */
export function parseExpression(text: string): Expr {
  if (text.trim() === '') {
    throw new ExprSyntaxError('the expression is empty', 0, "Write a source column, a constant such as 'text', or a function call.");
  }
  const p = new Parser(tokenize(text));
  const e = p.expression(0);
  p.expectEnd();
  return e;
}

/** Deepest nesting an expression may have (see Parser.level): far past any mapping, well inside the call stack. */
const MAX_LEVELS = 200;

const KEYWORDS = new Set(['and', 'or', 'not', 'is', 'null', 'true', 'false', 'case', 'when', 'then', 'else', 'end']);

const BP_OR = 1;
const BP_AND = 2;
const BP_NOT = 3;
const BP_IS = 4;
const BP_COMPARE = 5;
const BP_CONCAT = 6;
const BP_ADD = 7;
const BP_MUL = 8;

function keyword(t: Token): string | null {
  if (t.kind !== 'ident') return null;
  const k = t.value.toLowerCase();
  return KEYWORDS.has(k) ? k : null;
}

function describe(t: Token): string {
  return t.kind === 'eof' ? 'the end of the expression' : `"${t.text}"`;
}

class Parser {
  private i = 0;

  constructor(private readonly tokens: readonly Token[]) {}

  private peek(offset = 0): Token {
    return this.tokens[Math.min(this.i + offset, this.tokens.length - 1)]!;
  }
  private next(): Token {
    const t = this.peek();
    if (this.i < this.tokens.length - 1) this.i++;
    return t;
  }

  expectEnd(): void {
    const t = this.peek();
    if (t.kind !== 'eof') {
      throw new ExprSyntaxError(
        `unexpected ${describe(t)} after a complete expression`,
        t.start,
        'An operator or a comma may be missing before it, or a parenthesis may be closed too early.',
      );
    }
  }

  private expectKeyword(word: string, hint: string): Token {
    const t = this.peek();
    if (keyword(t) !== word) throw new ExprSyntaxError(`expected "${word}" but found ${describe(t)}`, t.start, hint);
    return this.next();
  }

  private infixPower(t: Token): number {
    if (t.kind === 'op') {
      switch (t.value) {
        case '||':
          return BP_CONCAT;
        case '+':
        case '-':
          return BP_ADD;
        case '*':
        case '/':
          return BP_MUL;
        default:
          return BP_COMPARE;
      }
    }
    switch (keyword(t)) {
      case 'or':
        return BP_OR;
      case 'and':
        return BP_AND;
      case 'is':
        return BP_IS;
      default:
        return 0;
    }
  }

  /**
   * Nesting so far: each open expression (a parenthesis, an argument, an
   * operand) and each operator of a chain (`a + b + c`) is one level, so
   * the tree's depth, and the recursion of every later step over it, stays
   * below MAX_LEVELS.
   */
  private level = 0;

  private enter(t: Token): void {
    if (++this.level > MAX_LEVELS) {
      throw new ExprSyntaxError(
        `the expression nests deeper than ${MAX_LEVELS} levels (parentheses, calls and operators) here`,
        t.start,
        'Write it in fewer levels, e.g. coalesce(a, b, c) instead of coalesce(a, coalesce(b, c)), or compute part of it in the database.',
      );
    }
  }

  expression(minPower: number): Expr {
    const outer = this.level;
    try {
      return this.operators(minPower);
    } finally {
      this.level = outer;
    }
  }

  private operators(minPower: number): Expr {
    this.enter(this.peek());
    let left = this.prefix();
    let comparedAt = -1;
    for (;;) {
      const t = this.peek();
      const power = this.infixPower(t);
      if (power <= minPower) return left;
      this.enter(t);
      this.next();
      if (power === BP_IS) {
        const negated = keyword(this.peek()) === 'not';
        if (negated) this.next();
        const nullTok = this.peek();
        if (keyword(nullTok) !== 'null') {
          throw new ExprSyntaxError(
            `expected "null" but found ${describe(nullTok)}`,
            nullTok.start,
            'Only "is null" and "is not null" are supported; compare values with = or <>.',
          );
        }
        this.next();
        left = { kind: 'is-null', arg: left, negated, start: left.start, end: nullTok.end };
        continue;
      }
      const op = (t.kind === 'op' ? t.value : keyword(t)) as BinaryOp;
      if (COMPARISON_OPS.has(op)) {
        if (comparedAt >= 0) {
          throw new ExprSyntaxError('comparisons cannot be chained', t.start, 'Combine them with and, e.g. a < b and b < c.');
        }
        comparedAt = t.start;
      }
      const right = this.expression(power);
      left = { kind: 'binary', op, left, right, opStart: t.start, start: left.start, end: right.end };
    }
  }

  private prefix(): Expr {
    const t = this.next();
    switch (t.kind) {
      case 'number':
        return {
          kind: 'literal',
          type: t.value.includes('.') ? 'numeric' : 'integer',
          value: t.value.startsWith('.') ? `0${t.value}` : t.value,
          start: t.start,
          end: t.end,
        };
      case 'string':
        return { kind: 'literal', type: 'text', value: t.value, start: t.start, end: t.end };
      case 'quoted-ident':
        return { kind: 'column', name: t.value, quoted: true, start: t.start, end: t.end };
      case '(': {
        const inner = this.expression(0);
        const close = this.peek();
        if (close.kind !== ')') {
          throw new ExprSyntaxError(
            `expected ")" but found ${describe(close)}`,
            close.start,
            `Close the parenthesis opened at character ${t.start + 1}, or add the operator that is missing.`,
          );
        }
        this.next();
        return { ...inner, start: t.start, end: close.end };
      }
      case 'op':
        if (t.value === '-') {
          const arg = this.expression(BP_MUL);
          return { kind: 'negate', arg, start: t.start, end: arg.end };
        }
        break;
      case 'ident':
        return this.word(t);
      default:
        break;
    }
    throw new ExprSyntaxError(
      `expected a value but found ${describe(t)}`,
      t.start,
      "Write a source column, a constant such as 'text' or 12, or a function call here.",
    );
  }

  private word(t: Token): Expr {
    const kw = keyword(t);
    switch (kw) {
      case 'null':
        return { kind: 'literal', type: 'null', value: null, start: t.start, end: t.end };
      case 'true':
      case 'false':
        return { kind: 'literal', type: 'boolean', value: kw === 'true' ? 't' : 'f', start: t.start, end: t.end };
      case 'not': {
        const arg = this.expression(BP_NOT);
        return { kind: 'not', arg, start: t.start, end: arg.end };
      }
      case 'case':
        return this.caseExpr(t);
      case null:
        break;
      default:
        throw new ExprSyntaxError(
          `expected a value but found "${t.text}"`,
          t.start,
          `"${kw}" is a keyword; a column with that name must be written in double quotes ("${t.text}").`,
        );
    }
    const after = this.peek();
    if (after.kind === '(') return this.call(t);
    if (after.kind === '.') {
      const field = this.peek(1);
      if (t.value === 'store' && field.kind === 'ident' && field.value === 'code') {
        this.next();
        this.next();
        return { kind: 'store-code', start: t.start, end: field.end };
      }
      const name = field.kind === 'ident' || field.kind === 'quoted-ident' ? `${t.text}.${field.text}` : `${t.text}.`;
      throw new ExprSyntaxError(
        `"${name}" is not a column: only store.code is written with a dot`,
        after.start,
        'Write the column name alone; columns are read from the source table of this file.',
      );
    }
    return { kind: 'column', name: t.value, quoted: false, start: t.start, end: t.end };
  }

  private call(nameTok: Token): Expr {
    this.next(); // (
    const args: Expr[] = [];
    if (this.peek().kind !== ')') {
      for (;;) {
        args.push(this.expression(0));
        const sep = this.peek();
        if (sep.kind === ',') {
          this.next();
          continue;
        }
        if (sep.kind === ')') break;
        throw new ExprSyntaxError(
          `expected "," or ")" but found ${describe(sep)}`,
          sep.start,
          `Separate the arguments of ${nameTok.text}(...) with commas and close it with ).`,
        );
      }
    }
    const close = this.next();
    return { kind: 'call', name: nameTok.value, args, start: nameTok.start, end: close.end };
  }

  private caseExpr(caseTok: Token): Expr {
    const whens: { when: Expr; then: Expr }[] = [];
    const simpleHint =
      'Write case when condition then value [when ...] [else value] end; for a value list write case when x = 1 then ... end.';
    this.expectKeyword('when', simpleHint);
    for (;;) {
      const when = this.expression(0);
      this.expectKeyword('then', 'Each "when condition" is followed by "then value".');
      const then = this.expression(0);
      whens.push({ when, then });
      const k = keyword(this.peek());
      if (k === 'when') {
        this.next();
        continue;
      }
      let otherwise: Expr | null = null;
      if (k === 'else') {
        this.next();
        otherwise = this.expression(0);
      }
      const end = this.expectKeyword('end', 'Finish the case expression with "end".');
      return { kind: 'case', whens, otherwise, start: caseTok.start, end: end.end };
    }
  }
}
