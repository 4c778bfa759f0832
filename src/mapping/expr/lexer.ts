/**
 * Splits a mapping expression into tokens. Hand-written: the language is
 * small, and every token keeps its position for error messages.
 */
export type TokenKind = 'number' | 'string' | 'ident' | 'quoted-ident' | 'op' | '(' | ')' | ',' | '.' | 'eof';

export interface Token {
  readonly kind: TokenKind;
  /** The token as written. */
  readonly text: string;
  /** Decoded value: the text of a literal or a quoted name, the operator, the identifier. */
  readonly value: string;
  readonly start: number;
  readonly end: number;
}

/** A problem at a character position of the expression. */
export class ExprSyntaxError extends Error {
  constructor(
    message: string,
    readonly index: number,
    readonly hint: string,
  ) {
    super(message);
    this.name = 'ExprSyntaxError';
  }
}

const OPERATORS = ['||', '<=', '>=', '<>', '!=', '+', '-', '*', '/', '=', '<', '>'] as const;

function isIdentStart(c: string): boolean {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_';
}
function isIdentPart(c: string): boolean {
  return isIdentStart(c) || isDigit(c);
}
function isDigit(c: string): boolean {
  return c >= '0' && c <= '9';
}

export function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    const start = i;
    if (isIdentStart(c)) {
      while (i < n && isIdentPart(text[i]!)) i++;
      const word = text.slice(start, i);
      tokens.push({ kind: 'ident', text: word, value: word, start, end: i });
      continue;
    }
    if (isDigit(c) || (c === '.' && i + 1 < n && isDigit(text[i + 1]!))) {
      while (i < n && isDigit(text[i]!)) i++;
      if (i < n && text[i] === '.') {
        i++;
        while (i < n && isDigit(text[i]!)) i++;
      }
      if (i < n && (isIdentStart(text[i]!) || text[i] === '.')) {
        let j = i;
        while (j < n && (isIdentPart(text[j]!) || text[j] === '.')) j++;
        throw new ExprSyntaxError(
          `"${text.slice(start, j)}" is not a number`,
          start,
          'Numbers are written like 12 or 12.50; a column name cannot start with a digit unless it is quoted ("2nd_price").',
        );
      }
      const num = text.slice(start, i);
      tokens.push({ kind: 'number', text: num, value: num, start, end: i });
      continue;
    }
    if (c === "'" || c === '"') {
      const { value, end } = readQuoted(text, i, c);
      tokens.push({ kind: c === "'" ? 'string' : 'quoted-ident', text: text.slice(start, end), value, start, end });
      i = end;
      continue;
    }
    if (c === '(' || c === ')' || c === ',' || c === '.') {
      tokens.push({ kind: c, text: c, value: c, start, end: i + 1 });
      i++;
      continue;
    }
    const op = OPERATORS.find((o) => text.startsWith(o, i));
    if (op) {
      tokens.push({ kind: 'op', text: op, value: op === '!=' ? '<>' : op, start, end: i + op.length });
      i += op.length;
      continue;
    }
    throw new ExprSyntaxError(
      `unexpected character "${c}"`,
      i,
      "An expression is made of columns, 'text', numbers, operators (|| + - * / = <> < <= > >= and or not) and functions such as upper(name).",
    );
  }
  // "The end of the expression" is reported just after its last character, not after trailing blanks.
  const end = text.trimEnd().length;
  tokens.push({ kind: 'eof', text: '', value: '', start: end, end });
  return tokens;
}

function readQuoted(text: string, open: number, quote: string): { value: string; end: number } {
  let i = open + 1;
  let value = '';
  for (;;) {
    const close = text.indexOf(quote, i);
    if (close < 0) {
      throw new ExprSyntaxError(
        quote === "'" ? 'the text literal is not closed' : 'the quoted column name is not closed',
        open,
        quote === "'"
          ? "End the text with ' (write '' for a quote inside the text)."
          : 'End the name with " (write "" for a double quote inside the name).',
      );
    }
    value += text.slice(i, close);
    if (text[close + 1] === quote) {
      value += quote;
      i = close + 2;
      continue;
    }
    return { value, end: close + 1 };
  }
}
