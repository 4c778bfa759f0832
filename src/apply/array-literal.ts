/**
 * A PostgreSQL array literal for a text[] parameter, e.g.
 * `{1,"a b",NULL,"say \"hi\""}`. node-postgres can turn a JavaScript array
 * into one, but it quotes and regex-escapes every element; here only
 * elements that need it are quoted (the common value, a number or a plain
 * word, is copied as it is). The whole statement's data then travels as one
 * string per column.
 */
const NEEDS_QUOTES = /[{}",\\\s]/;

export function textArrayLiteral(values: readonly (string | null | undefined)[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ',';
    const v = values[i];
    if (v === null || v === undefined) {
      out += 'NULL';
    } else if (v.length === 0 || NEEDS_QUOTES.test(v) || (v.length === 4 && v.toUpperCase() === 'NULL')) {
      out += '"' + v.replace(/[\\"]/g, '\\$&') + '"';
    } else {
      out += v;
    }
  }
  return out + '}';
}
