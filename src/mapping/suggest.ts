/** "Did you mean ...?" suggestions for misspelt column, table and function names. */

/**
 * Edit distance where inserting, deleting or replacing a character, or
 * swapping two neighbours ("nmae" -> "name"), each count 1 (optimal string
 * alignment distance). Past 256 × 256 cells (no name is that long), the longer length (an upper bound).
 */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  // No name a database takes is this long: a huge one is as far from every name as it is long, without a table of a.length * b.length cells.
  if (a.length * b.length > 65_536) return Math.max(a.length, b.length);
  const width = b.length + 1;
  const d = new Array<number>((a.length + 1) * width);
  for (let i = 0; i <= a.length; i++) d[i * width] = i;
  for (let j = 0; j <= b.length; j++) d[j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[(i - 1) * width + j]! + 1, d[i * width + j - 1]! + 1, d[(i - 1) * width + j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[(i - 2) * width + j - 2]! + 1);
      d[i * width + j] = v;
    }
  }
  return d[a.length * width + b.length]!;
}

/**
 * The candidates close to `name` (case-insensitive edit distance of at most
 * a third of the name's length, at least 1, at most 3, or the name is the
 * start of the candidate), closest first, at most `limit` of them.
 */
export function didYouMean(name: string, candidates: readonly string[], limit = 3): string[] {
  const lower = name.toLowerCase();
  const max = Math.min(3, Math.max(1, Math.floor(name.length / 3)));
  const scored: { c: string; d: number }[] = [];
  for (const c of new Set(candidates)) {
    if (c === name) continue;
    const other = c.toLowerCase();
    // A name cut short counts too ("sale" -> "sale_id"), ranked after closer spellings.
    const prefix = lower.length >= 3 && other.startsWith(lower);
    // The distance is at least the difference in length (exactly that for a prefix): a huge name costs no table of edits.
    if (!prefix && Math.abs(other.length - lower.length) > max) continue;
    const d = prefix ? other.length - lower.length : editDistance(lower, other);
    if (d <= max || prefix) scored.push({ c, d: d <= max ? d : max + d });
  }
  scored.sort((x, y) => x.d - y.d || (x.c < y.c ? -1 : x.c > y.c ? 1 : 0));
  return scored.slice(0, limit).map((s) => s.c);
}
