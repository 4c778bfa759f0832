/**
 * The syntax tree of a mapping expression. Positions are character indexes
 * into the expression text (0-based, `end` exclusive), so a problem can be
 * reported at the exact token inside the YAML value.
 */
export interface Span {
  readonly start: number;
  readonly end: number;
}

export type BinaryOp = '||' | '+' | '-' | '*' | '/' | '=' | '<>' | '<' | '<=' | '>' | '>=' | 'and' | 'or';

export type LiteralType = 'text' | 'integer' | 'numeric' | 'boolean' | 'null';

export type Expr =
  | (Span & { readonly kind: 'literal'; readonly type: LiteralType; readonly value: string | null })
  | (Span & { readonly kind: 'column'; readonly name: string; readonly quoted: boolean })
  | (Span & { readonly kind: 'store-code' })
  | (Span & { readonly kind: 'negate'; readonly arg: Expr })
  | (Span & { readonly kind: 'not'; readonly arg: Expr })
  | (Span & { readonly kind: 'is-null'; readonly arg: Expr; readonly negated: boolean })
  | (Span & {
      readonly kind: 'binary';
      readonly op: BinaryOp;
      readonly left: Expr;
      readonly right: Expr;
      /** Where the operator is written. */
      readonly opStart: number;
    })
  | (Span & { readonly kind: 'call'; readonly name: string; readonly args: readonly Expr[] })
  | (Span & {
      readonly kind: 'case';
      readonly whens: readonly { readonly when: Expr; readonly then: Expr }[];
      readonly otherwise: Expr | null;
    });

export const COMPARISON_OPS: ReadonlySet<BinaryOp> = new Set(['=', '<>', '<', '<=', '>', '>=']);
export const ARITHMETIC_OPS: ReadonlySet<BinaryOp> = new Set(['+', '-', '*', '/']);

/** Calls `visit` on `e` and every expression inside it. */
export function walk(e: Expr, visit: (e: Expr) => void): void {
  visit(e);
  switch (e.kind) {
    case 'negate':
    case 'not':
    case 'is-null':
      walk(e.arg, visit);
      break;
    case 'binary':
      walk(e.left, visit);
      walk(e.right, visit);
      break;
    case 'call':
      for (const a of e.args) walk(a, visit);
      break;
    case 'case':
      for (const w of e.whens) {
        walk(w.when, visit);
        walk(w.then, visit);
      }
      if (e.otherwise) walk(e.otherwise, visit);
      break;
    default:
      break;
  }
}
