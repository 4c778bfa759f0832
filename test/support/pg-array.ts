/**
 * Reads a one-dimensional PostgreSQL array literal back into values, by
 * PostgreSQL's rules (array_in): NULL unquoted is null, quoted elements
 * unescape backslashes, unquoted elements are trimmed. For tests only: an
 * independent reading of what the sink sends.
 */
export function parseTextArray(literal: string): (string | null)[] {
  if (!literal.startsWith('{') || !literal.endsWith('}')) throw new Error(`not an array literal: ${literal}`);
  const body = literal.slice(1, -1);
  if (body.trim() === '') return [];
  const out: (string | null)[] = [];
  let i = 0;
  while (i <= body.length) {
    while (body[i] === ' ') i++;
    if (body[i] === '"') {
      let v = '';
      i++;
      while (body[i] !== '"') {
        if (i >= body.length) throw new Error('unterminated quote');
        if (body[i] === '\\') i++;
        v += body[i];
        i++;
      }
      i++;
      out.push(v);
    } else {
      let j = i;
      while (j < body.length && body[j] !== ',') j++;
      const raw = body.slice(i, j).trim();
      out.push(raw.toUpperCase() === 'NULL' ? null : raw);
      i = j;
    }
    while (body[i] === ' ') i++;
    if (i >= body.length) break;
    if (body[i] !== ',') throw new Error(`expected a comma at ${i} in ${literal}`);
    i++;
  }
  return out;
}
