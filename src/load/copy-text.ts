/**
 * PostgreSQL's COPY text format, read back into rows of text values (the
 * form every change travels in): fields separated by tabs, rows by
 * newlines, `\N` for NULL, backslash escapes for the rest.
 * See https://www.postgresql.org/docs/current/sql-copy.html (Text Format).
 */
export function parseCopyLine(line: string, columns: readonly string[]): Record<string, string | null> {
  const row: Record<string, string | null> = {};
  let field = 0;
  let start = 0;
  for (let i = 0; i <= line.length; i++) {
    if (i < line.length && line.charCodeAt(i) !== 9) continue;
    const raw = line.slice(start, i);
    const name = columns[field];
    if (name === undefined) throw new Error(`COPY row has more than ${columns.length} fields`);
    row[name] = raw === '\\N' ? null : raw.includes('\\') ? unescape(raw) : raw;
    field++;
    start = i + 1;
  }
  if (field !== columns.length) throw new Error(`COPY row has ${field} fields, expected ${columns.length}`);
  return row;
}

const SIMPLE: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\' };

function unescape(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '\\' || i + 1 >= s.length) {
      out += c;
      continue;
    }
    const n = s[i + 1]!;
    if (SIMPLE[n] !== undefined) {
      out += SIMPLE[n];
      i++;
    } else if (n >= '0' && n <= '7') {
      let j = i + 1;
      while (j < s.length && j < i + 4 && s[j]! >= '0' && s[j]! <= '7') j++;
      out += String.fromCharCode(parseInt(s.slice(i + 1, j), 8));
      i = j - 1;
    } else if (n === 'x' && /[0-9a-fA-F]/.test(s[i + 2] ?? '')) {
      let j = i + 2;
      while (j < s.length && j < i + 4 && /[0-9a-fA-F]/.test(s[j]!)) j++;
      out += String.fromCharCode(parseInt(s.slice(i + 2, j), 16));
      i = j - 1;
    } else {
      out += n; // any other escaped character stands for itself
      i++;
    }
  }
  return out;
}
