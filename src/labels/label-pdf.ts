import { BranchlineError } from '../core/errors.js';
import { ELLIPSIS_BYTE, encodeWinAnsi, textWidth, type StandardFont } from './win-ansi.js';

/** One shelf label: a product whose price changed at a store. */
export interface ShelfLabel {
  readonly code: string;
  readonly description: string;
  /** Decimal text as stored ("12.90"); printed digit for digit, never through a JavaScript number. */
  readonly price: string;
  /** Printed before the price as given ("R$", "€"). */
  readonly currency?: string | null;
  /** The price before the change, printed smaller and struck through. */
  readonly previousPrice?: string | null;
  /** When the new price takes effect; its date is printed on the label. */
  readonly effectiveAt?: Date | null;
}

export interface LabelsPdfOptions {
  /** The document's title (its metadata; not printed). */
  readonly title?: string;
  /** The document's creation date (metadata). Without it the PDF has none: the output depends on the input only. */
  readonly createdAt?: Date;
  /** Between the whole and the fractional part of prices; default ','. */
  readonly decimalSeparator?: ',' | '.';
  /** IANA time zone in which the date of `effectiveAt` is printed; default 'UTC'. */
  readonly timeZone?: string;
}

/** Labels per page: 3 columns x 8 rows on A4. */
export const LABELS_PER_PAGE = 24;
const COLUMNS = 3;
const ROWS = 8;
const PAGE_WIDTH = 595.28; // A4 in points
const PAGE_HEIGHT = 841.89;
const MARGIN = 28.35; // 10 mm, inside what office printers can reach
const LABEL_WIDTH = (PAGE_WIDTH - 2 * MARGIN) / COLUMNS;
const LABEL_HEIGHT = (PAGE_HEIGHT - 2 * MARGIN) / ROWS;
const PADDING = 6;
const DESCRIPTION_SIZE = 10;
const CODE_SIZE = 8;
const PREVIOUS_PRICE_SIZE = 10;
const PRICE_SIZE = 26;

const FONT_RESOURCE: Record<StandardFont, string> = { Helvetica: 'F1', 'Helvetica-Bold': 'F2' };
const DECIMAL_TEXT = /^-?\d+(\.\d+)?$/;

/**
 * A price as printed: the decimal text with `decimalSeparator`, after the
 * currency if there is one ("12.90", "R$", ',' -> "R$ 12,90"). Throws BL-L002
 * for text that is not a decimal number (NaN, "1e3", "12,90").
 */
export function formatPrice(price: string, currency?: string | null, decimalSeparator: ',' | '.' = ','): string {
  const text = price.trim();
  if (!DECIMAL_TEXT.test(text)) {
    throw new BranchlineError({
      code: 'BL-L002',
      message: `shelf label price ${JSON.stringify(price)} is not a decimal number`,
      hint: 'The price column must hold a number such as 12.90 (a numeric column at HQ; NaN and infinity cannot be printed).',
    });
  }
  const amount = decimalSeparator === '.' ? text : text.replace('.', decimalSeparator);
  return currency ? `${currency} ${amount}` : amount;
}

/**
 * A PDF 1.4 document of shelf labels, one per entry, 24 to an A4 page
 * (as many pages as needed; one empty page for no labels). Each label shows
 * the description (bold, cut with an ellipsis to fit), the product code, the
 * date the price takes effect, the previous price struck through and the new
 * price large. Uses only the standard fonts Helvetica and Helvetica-Bold with
 * WinAnsiEncoding (characters outside it print as '?'). The same labels and
 * options give the same bytes.
 */
export function renderLabelsPdf(labels: readonly ShelfLabel[], options: LabelsPdfOptions = {}): Buffer {
  const separator = options.decimalSeparator ?? ',';
  const dateOf = dateFormatter(options.timeZone ?? 'UTC');
  const pages: string[] = [];
  for (let first = 0; first < labels.length || pages.length === 0; first += LABELS_PER_PAGE) {
    const ops = ['0.5 w 0.6 G 0 g'];
    labels.slice(first, first + LABELS_PER_PAGE).forEach((label, i) => {
      const x = MARGIN + (i % COLUMNS) * LABEL_WIDTH;
      const y = PAGE_HEIGHT - MARGIN - (Math.floor(i / COLUMNS) + 1) * LABEL_HEIGHT;
      ops.push(...labelOps(label, x, y, separator, dateOf));
    });
    pages.push(ops.join('\n') + '\n');
  }
  return writeDocument(pages, options);
}

function labelOps(label: ShelfLabel, x: number, y: number, separator: ',' | '.', dateOf: (d: Date) => string): string[] {
  const inner = LABEL_WIDTH - 2 * PADDING;
  const left = x + PADDING;
  const right = x + LABEL_WIDTH - PADDING;
  const top = y + LABEL_HEIGHT;
  const ops = [`${num(x)} ${num(y)} ${num(LABEL_WIDTH)} ${num(LABEL_HEIGHT)} re S`];

  const description = fit(encodeWinAnsi(oneLine(label.description)), 'Helvetica-Bold', DESCRIPTION_SIZE, inner);
  ops.push(text(description, 'Helvetica-Bold', DESCRIPTION_SIZE, left, top - PADDING - DESCRIPTION_SIZE));

  const codeY = top - PADDING - DESCRIPTION_SIZE - 4 - CODE_SIZE;
  let codeRoom = inner;
  if (label.effectiveAt) {
    const date = encodeWinAnsi(dateOf(label.effectiveAt));
    const width = textWidth(date, 'Helvetica', CODE_SIZE);
    ops.push(text(date, 'Helvetica', CODE_SIZE, right - width, codeY));
    codeRoom -= width + CODE_SIZE;
  }
  ops.push(text(fit(encodeWinAnsi(oneLine(label.code)), 'Helvetica', CODE_SIZE, codeRoom), 'Helvetica', CODE_SIZE, left, codeY));

  if (label.previousPrice) {
    const previous = encodeWinAnsi(oneLine(priceOf(label, label.previousPrice, separator)));
    const size = shrink(previous, 'Helvetica', PREVIOUS_PRICE_SIZE, inner);
    const width = textWidth(previous, 'Helvetica', size);
    const baseline = y + PADDING + PRICE_SIZE + 6;
    ops.push(text(previous, 'Helvetica', size, right - width, baseline));
    const strike = baseline + size * 0.3;
    ops.push(`${num(right - width)} ${num(strike)} m ${num(right)} ${num(strike)} l S`);
  }

  const price = encodeWinAnsi(oneLine(priceOf(label, label.price, separator)));
  const size = shrink(price, 'Helvetica-Bold', PRICE_SIZE, inner);
  ops.push(text(price, 'Helvetica-Bold', size, right - textWidth(price, 'Helvetica-Bold', size), y + PADDING + 4));
  return ops;
}

/** formatPrice, with the product's code in the message of BL-L002. */
function priceOf(label: ShelfLabel, price: string, separator: ',' | '.'): string {
  try {
    return formatPrice(price, label.currency, separator);
  } catch (e) {
    if (!(e instanceof BranchlineError)) throw e;
    throw new BranchlineError({ ...e.problem, message: `product ${JSON.stringify(label.code)}: ${e.problem.message}` });
  }
}

/** Whitespace (newlines, tabs, runs of spaces) as single spaces. */
function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

/** The text, or its longest start (without trailing spaces) that fits with an ellipsis after it. */
function fit(bytes: Uint8Array, font: StandardFont, size: number, room: number): Uint8Array {
  if (textWidth(bytes, font, size) <= room) return bytes;
  const ellipsis = Uint8Array.of(ELLIPSIS_BYTE);
  let width = textWidth(ellipsis, font, size);
  let end = 0;
  while (end < bytes.length) {
    width += textWidth(bytes.subarray(end, end + 1), font, size);
    if (width > room) break;
    end++;
  }
  while (end > 0 && bytes[end - 1] === 0x20) end--;
  const out = new Uint8Array(end + 1);
  out.set(bytes.subarray(0, end));
  out.set(ellipsis, end);
  return out;
}

/** The font size at which the text fits (prices are made smaller, never cut). */
function shrink(bytes: Uint8Array, font: StandardFont, size: number, room: number): number {
  const width = textWidth(bytes, font, size);
  return width <= room ? size : Math.floor(((size * room) / width) * 10) / 10;
}

function text(bytes: Uint8Array, font: StandardFont, size: number, x: number, y: number): string {
  return `BT /${FONT_RESOURCE[font]} ${num(size)} Tf ${num(x)} ${num(y)} Td ${pdfString(bytes)} Tj ET`;
}

/** A PDF literal string; ( ) \ escaped, bytes outside printable ASCII as octal (the stream stays ASCII). */
function pdfString(bytes: Uint8Array): string {
  let out = '(';
  for (const b of bytes) {
    if (b === 0x28 || b === 0x29 || b === 0x5c) out += `\\${String.fromCharCode(b)}`;
    else if (b < 0x20 || b > 0x7e) out += `\\${b.toString(8).padStart(3, '0')}`;
    else out += String.fromCharCode(b);
  }
  return `${out})`;
}

/** A number with at most two decimals, as PDF writes it (no exponent, no trailing zeros). */
function num(n: number): string {
  return String(Math.round(n * 100) / 100);
}

function dateFormatter(timeZone: string): (d: Date) => string {
  const format = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
  return (d) => {
    const part = (type: string): string => format.formatToParts(d).find((p) => p.type === type)?.value ?? '';
    return `${part('year')}-${part('month')}-${part('day')}`;
  };
}

/** PDF date: D:YYYYMMDDHHmmSSZ (UTC). */
function pdfDate(d: Date): string {
  return `D:${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

/** A text string for the document information: UTF-16BE with a byte order mark, as hex. */
function pdfTextString(s: string): string {
  const units = Buffer.from(s, 'utf16le').swap16();
  return `<FEFF${units.toString('hex').toUpperCase()}>`;
}

/**
 * The document: catalog (1), page tree (2), fonts (3, 4), information (5),
 * then a page and its content stream per page; the cross-reference table
 * gives each object's byte offset.
 */
function writeDocument(pageContents: readonly string[], options: LabelsPdfOptions): Buffer {
  const info = ['/Producer (branchline)'];
  if (options.title !== undefined) info.push(`/Title ${pdfTextString(options.title)}`);
  if (options.createdAt) info.push(`/CreationDate (${pdfDate(options.createdAt)})`);
  const pageIds = pageContents.map((_, i) => 6 + 2 * i);
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    `<< /Type /Pages /Kids [${pageIds.map((id) => `${id} 0 R`).join(' ')}] /Count ${pageIds.length} >>`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>',
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>',
    `<< ${info.join(' ')} >>`,
  ];
  for (const [i, content] of pageContents.entries()) {
    objects.push(
      `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 ${PAGE_WIDTH} ${PAGE_HEIGHT}] ` +
        `/Resources << /Font << /F1 3 0 R /F2 4 0 R >> /ProcSet [/PDF /Text] >> /Contents ${pageIds[i]! + 1} 0 R >>`,
      `<< /Length ${Buffer.byteLength(content, 'latin1')} >>\nstream\n${content}\nendstream`,
    );
  }
  // The second line marks the file as binary for transfer programs (PDF 1.4, 3.4.1).
  const chunks: Buffer[] = [Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n', 'latin1')];
  let size = chunks[0]!.length;
  const offsets: number[] = [];
  for (const [i, body] of objects.entries()) {
    offsets.push(size);
    const chunk = Buffer.from(`${i + 1} 0 obj\n${body}\nendobj\n`, 'latin1');
    chunks.push(chunk);
    size += chunk.length;
  }
  const xref = [
    'xref',
    `0 ${objects.length + 1}`,
    '0000000000 65535 f \n',
    ...offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`),
  ];
  chunks.push(
    Buffer.from(
      `${xref.slice(0, 2).join('\n')}\n${xref.slice(2).join('')}` +
        `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R /Info 5 0 R >>\nstartxref\n${size}\n%%EOF\n`,
      'latin1',
    ),
  );
  return Buffer.concat(chunks);
}
