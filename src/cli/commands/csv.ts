/** Reading the CSV files of `branchline associate --import`. */

export interface CsvField {
  readonly value: string;
  readonly quoted: boolean;
  readonly line: number;
  readonly column: number;
}

export interface CsvRecord {
  readonly line: number;
  readonly fields: CsvField[];
}

/**
 * RFC 4180: fields separated by commas, records by CRLF (or LF); a field in
 * double quotes may hold commas, line breaks and "" for a quote. Blank lines
 * are skipped; a record with a syntax problem is reported and left out.
 */
export function parseCsv(text: string): { records: CsvRecord[]; problems: { line: number; column: number; message: string; hint: string }[] } {
  const records: CsvRecord[] = [];
  const problems: { line: number; column: number; message: string; hint: string }[] = [];
  let i = text.startsWith('\uFEFF') ? 1 : 0;
  let line = 1;
  let column = 1;
  const n = text.length;
  const isBreak = (c: string | undefined) => c === '\n' || c === '\r';
  /** Steps over a line break at i (CRLF, LF or CR). */
  const breakLine = () => {
    if (text[i] === '\r' && text[i + 1] === '\n') i++;
    i++;
    line++;
    column = 1;
  };
  while (i < n) {
    const recordLine = line;
    const fields: CsvField[] = [];
    let bad = false;
    for (;;) {
      const start = { line, column };
      let value = '';
      let quoted = false;
      if (text[i] === '"') {
        quoted = true;
        i++;
        column++;
        let closed = false;
        while (i < n) {
          const c = text[i]!;
          if (c === '"') {
            if (text[i + 1] === '"') {
              value += '"';
              i += 2;
              column += 2;
              continue;
            }
            i++;
            column++;
            closed = true;
            break;
          }
          if (isBreak(c)) {
            value += c === '\r' && text[i + 1] === '\n' ? '\r\n' : c;
            breakLine();
            continue;
          }
          value += c;
          i++;
          column++;
        }
        if (!closed) {
          problems.push({
            line: start.line,
            column: start.column,
            message: 'the quoted value that starts here is never closed.',
            hint: 'End it with a double quote; a quote inside a quoted value is written twice ("").',
          });
          return { records, problems };
        }
        if (i < n && text[i] !== ',' && !isBreak(text[i])) {
          problems.push({
            line,
            column,
            message: 'a value goes on after its closing quote.',
            hint: 'Quote the whole value, and write a quote inside it twice: "a ""b"" c".',
          });
          bad = true;
          while (i < n && !isBreak(text[i])) {
            i++;
            column++;
          }
        }
      } else {
        while (i < n && text[i] !== ',' && !isBreak(text[i])) {
          if (text[i] === '"' && !bad) {
            problems.push({
              line,
              column,
              message: 'a double quote inside a value that does not start with one.',
              hint: 'Quote the whole value, and write a quote inside it twice: "a ""b"" c".',
            });
            bad = true;
          }
          value += text[i];
          i++;
          column++;
        }
      }
      fields.push({ value, quoted, line: start.line, column: start.column });
      if (i < n && text[i] === ',') {
        i++;
        column++;
        continue;
      }
      break;
    }
    if (i < n) breakLine();
    const blank = fields.length === 1 && !fields[0]!.quoted && fields[0]!.value === '';
    if (!bad && !blank) records.push({ line: recordLine, fields });
  }
  return { records, problems };
}
