/**
 * Where a text stops being JSON, found without echoing it: V8's own
 * messages quote the text around the error ("Unexpected token 'x', "...xyz"
 * is not valid JSON") and name no position for some errors, so the server
 * tells the caller this position instead. Run only on text JSON.parse refused.
 */
export interface JsonErrorAt {
  /** 0-based index of the first character that cannot be where it is (the text's length: it ended too early). */
  readonly position: number;
  readonly line: number;
  readonly column: number;
}

class Stop extends Error {
  constructor(readonly at: number) {
    super('stop');
  }
}

function scan(text: string): number | null {
  let i = 0;
  const ws = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const expect = (word: string): void => {
    for (const ch of word) {
      if (text[i] !== ch) throw new Stop(i);
      i++;
    }
  };
  const string = (): void => {
    i++; // the opening quote
    for (;;) {
      if (i >= text.length) throw new Stop(i);
      const ch = text.charCodeAt(i);
      if (ch === 0x22) return void i++;
      if (ch < 0x20) throw new Stop(i);
      if (ch === 0x5c) {
        const e = text[i + 1];
        if (e === 'u') {
          for (let k = 2; k < 6; k++) if (!/[0-9a-fA-F]/.test(text[i + k] ?? '')) throw new Stop(Math.min(i + k, text.length));
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else throw new Stop(Math.min(i + 1, text.length));
      } else i++;
    }
  };
  const digits = (): void => {
    if (!/[0-9]/.test(text[i] ?? '')) throw new Stop(i);
    while (/[0-9]/.test(text[i] ?? '')) i++;
  };
  const number = (): void => {
    if (text[i] === '-') i++;
    if (text[i] === '0') i++;
    else digits();
    if (text[i] === '.') {
      i++;
      digits();
    }
    if (text[i] === 'e' || text[i] === 'E') {
      i++;
      if (text[i] === '+' || text[i] === '-') i++;
      digits();
    }
  };
  const value = (): void => {
    ws();
    const ch = text[i];
    if (ch === '{') {
      i++;
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        if (text[i] !== '"') throw new Stop(i);
        string();
        ws();
        expect(':');
        value();
        ws();
        if (text[i] === ',') i++;
        else return expect('}');
      }
    }
    if (ch === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (;;) {
        value();
        ws();
        if (text[i] === ',') i++;
        else return expect(']');
      }
    }
    if (ch === '"') return string();
    if (ch === 't') return expect('true');
    if (ch === 'f') return expect('false');
    if (ch === 'n') return expect('null');
    if (ch === '-' || /[0-9]/.test(ch ?? '')) return number();
    throw new Stop(i);
  };
  try {
    value();
    ws();
    return i < text.length ? i : null;
  } catch (e) {
    if (e instanceof Stop) return e.at;
    // Nested deeper than this stack goes: say no position rather than a wrong one.
    if (e instanceof RangeError) return -1;
    throw e;
  }
}

/** The first offending position of `text` (null if it is JSON after all, or nested too deep to tell). */
export function jsonErrorAt(text: string): JsonErrorAt | null {
  const position = scan(text);
  if (position === null || position < 0) return null;
  const before = text.slice(0, position);
  const line = before.split('\n').length;
  return { position, line, column: position - before.lastIndexOf('\n') };
}
