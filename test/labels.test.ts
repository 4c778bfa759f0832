import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { BranchlineError } from '../src/core/errors.js';
import { createLogger, silentLogger, type Logger } from '../src/core/logger.js';
import { formatPrice, renderLabelsPdf, type ShelfLabel } from '../src/labels/label-pdf.js';
import { LabelWriter } from '../src/labels/label-writer.js';
import { encodeWinAnsi } from '../src/labels/win-ansi.js';

// The PDFs are read back with poppler's pdftotext and pdfinfo (Debian
// package poppler-utils, installed by .ci/run): a reader that shares no code
// with the writer. Without it these tests fail; they are never skipped.

const CREATED_AT = new Date('2025-03-01T12:34:56.789Z');
const work = await mkdtemp(path.join(os.tmpdir(), 'branchline-labels-'));
after(() => rm(work, { recursive: true, force: true }));

let files = 0;
/** Runs a poppler tool on the PDF; its stderr must be empty (poppler reports every syntax problem there). */
async function poppler(tool: 'pdftotext' | 'pdfinfo', pdf: Buffer, args: readonly string[] = []): Promise<string> {
  const file = path.join(work, `read-${++files}.pdf`);
  await writeFile(file, pdf);
  const out = tool === 'pdftotext' ? ['-enc', 'UTF-8', ...args, file, '-'] : [...args, file];
  const r = spawnSync(tool, out, { encoding: 'utf8' });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    assert.fail(`${tool} is not installed. These tests read the PDF with poppler: install the Debian package poppler-utils (apt-get install poppler-utils; .ci/run does it).`);
  }
  assert.equal(r.error, undefined);
  assert.equal(r.stderr, '', `${tool} complains about the PDF`);
  assert.equal(r.status, 0, `${tool} exit status`);
  return r.stdout;
}

const pdfText = (pdf: Buffer, args: readonly string[] = []): Promise<string> => poppler('pdftotext', pdf, args);

async function pdfInfo(pdf: Buffer): Promise<{ pages: number; pageSize: string }> {
  const info = await poppler('pdfinfo', pdf);
  return { pages: Number(/^Pages:\s+(\d+)$/m.exec(info)?.[1]), pageSize: /^Page size:\s+(.*)$/m.exec(info)?.[1] ?? '' };
}

function occurrences(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

/** 30 products whose descriptions, codes and prices never contain one another. */
function products(): ShelfLabel[] {
  return Array.from({ length: 30 }, (_, i) => {
    const n = String(i + 1).padStart(2, '0');
    return {
      code: `78910001000${n}`,
      description: `Produto ${n} arroz tipo ${i % 2 ? 'integral' : 'branco'}`,
      price: `${10 + i}.${n}`,
      currency: 'R$',
      previousPrice: i % 3 === 0 ? `${50 + i}.${n}` : null,
    };
  });
}

describe('renderLabelsPdf: what a PDF reader sees', () => {
  test('30 labels fill an A4 page of 24 and 6 on a second; each product appears exactly once', async () => {
    const labels = products();
    const pdf = renderLabelsPdf(labels, { createdAt: CREATED_AT });
    assert.deepEqual(await pdfInfo(pdf), { pages: 2, pageSize: '595.28 x 841.89 pts (A4)' });
    const all = await pdfText(pdf);
    const page1 = await pdfText(pdf, ['-f', '1', '-l', '1']);
    const page2 = await pdfText(pdf, ['-f', '2', '-l', '2']);
    for (const [i, l] of labels.entries()) {
      const price = `R$ ${l.price.replace('.', ',')}`;
      for (const shown of [l.description, l.code, price, ...(l.previousPrice ? [`R$ ${l.previousPrice.replace('.', ',')}`] : [])]) {
        assert.equal(occurrences(all, shown), 1, `${JSON.stringify(shown)} once in the document`);
        assert.equal(occurrences(i < 24 ? page1 : page2, shown), 1, `${JSON.stringify(shown)} on page ${i < 24 ? 1 : 2}`);
      }
    }
  });

  test('accents and other WinAnsi characters come out as written; others become ?', async () => {
    const descriptions = ['Pão francês', 'Café Moído 500g', 'Açúcar', 'Niño', 'ÁÉÍÓÚ ÂÊÔ ÃÕ Ç Ñ Ü', 'áéíóú âêô ãõ ç ñ ü', 'Molho (picante) \\ 1/2', 'Oferta :-) leve 3 (pague 2'];
    const labels: ShelfLabel[] = [
      ...descriptions.map((description, i) => ({ code: `A${i}`, description, price: '1.00' })),
      { code: 'B1', description: 'Cafe\u0301 decomposto', price: '2.00', currency: '€' },
      { code: 'B2', description: 'Łódź 日本', price: '3.00' },
    ];
    const text = await pdfText(renderLabelsPdf(labels));
    for (const d of descriptions) assert.equal(occurrences(text, d), 1, d);
    assert.equal(occurrences(text, 'Café decomposto'), 1, 'combining accent composed (NFC)');
    assert.equal(occurrences(text, '€ 2,00'), 1, 'euro sign');
    assert.equal(occurrences(text, '?ód? ??'), 1, 'characters outside WinAnsi are ?');
  });

  test('the WinAnsi encoder gives Windows-1252 bytes', () => {
    const latin1 = Array.from({ length: 0x5f }, (_, i) => 0x20 + i).concat(Array.from({ length: 0x60 }, (_, i) => 0xa0 + i));
    assert.deepEqual([...encodeWinAnsi(String.fromCharCode(...latin1))], latin1, 'ASCII and Latin-1 as they are');
    const high = '€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ';
    const bytes = [0x80, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8e, 0x91, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9e, 0x9f];
    assert.deepEqual([...encodeWinAnsi(high)], bytes, 'the characters Windows-1252 puts at 0x80..0x9F');
    assert.deepEqual([...encodeWinAnsi('\u0081\u007f\u0009\u{1F600}')], [0x3f, 0x3f, 0x3f, 0x3f], 'controls and the rest are ?');
  });

  test('a long description is cut with an ellipsis; no text leaves its label', async () => {
    const long = 'Biscoito recheado sabor chocolate com morango embalagem família econômica 400g';
    const labels: ShelfLabel[] = [
      { code: '7891000000001', description: long, price: '4.99', previousPrice: '5.49', currency: 'R$', effectiveAt: CREATED_AT },
      { code: '7891000000002'.repeat(4), description: 'W'.repeat(60), price: '123456789012.99', currency: 'R$' },
      ...products().slice(0, 10),
    ];
    const pdf = renderLabelsPdf(labels);
    const text = await pdfText(pdf);
    const line = text.split('\n').find((l) => l.startsWith('Biscoito'));
    assert.ok(line, 'the description is there');
    assert.ok(line.endsWith('…'), `cut with an ellipsis: ${line}`);
    const prefix = line.slice(0, -1);
    assert.ok(prefix.length >= 20 && long.startsWith(prefix) && !prefix.endsWith(' '), `a start of the description: ${prefix}`);
    assert.equal(occurrences(text, long), 0, 'not printed whole');
    assert.equal(occurrences(text, 'R$ 123456789012,99'), 1, 'a long price is made smaller, never cut');

    // Every word's box (pdftotext -bbox, top-down coordinates) lies in one cell of the
    // 3 x 8 grid of A4 inside 10 mm margins.
    const [margin, width, height] = [28.35, (595.28 - 2 * 28.35) / 3, (841.89 - 2 * 28.35) / 8];
    const boxes = [...(await pdfText(pdf, ['-bbox'])).matchAll(/xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</g)];
    assert.ok(boxes.length > 50, `words found: ${boxes.length}`);
    for (const [, ...m] of boxes) {
      const [xMin, yMin, xMax, yMax] = m.slice(0, 4).map(Number) as [number, number, number, number];
      const column = Math.floor((xMin - margin) / width);
      const row = Math.floor((yMin - margin) / height);
      const cell = { left: margin + column * width, right: margin + (column + 1) * width, top: margin + row * height, bottom: margin + (row + 1) * height };
      assert.ok(column >= 0 && column < 3 && row >= 0 && row < 8, `${m[4]} in the grid`);
      assert.ok(xMin >= cell.left + 1 && xMax <= cell.right - 1 && yMin >= cell.top && yMax <= cell.bottom, `${m[4]} (${m.slice(0, 4).join(' ')}) inside its label ${JSON.stringify(cell)}`);
    }
  });

  test('prices are printed digit for digit, with the decimal separator asked for', async () => {
    assert.equal(formatPrice('12.90', 'R$'), 'R$ 12,90');
    assert.equal(formatPrice('12.90', 'R$', '.'), 'R$ 12.90');
    assert.equal(formatPrice('0.10', null), '0,10');
    assert.equal(formatPrice('7', '€'), '€ 7');
    assert.equal(formatPrice('-0.30', '$', '.'), '$ -0.30');
    assert.equal(formatPrice('12345678901234567890.123456789', 'R$'), 'R$ 12345678901234567890,123456789');
    for (const bad of ['NaN', 'Infinity', '1e3', '12,90', '', '.5', '1.']) {
      assert.throws(() => formatPrice(bad), (e: unknown) => e instanceof BranchlineError && e.code === 'BL-L002' && e.message.includes(JSON.stringify(bad)), bad);
    }
    assert.throws(
      () => renderLabelsPdf([{ code: 'X-17', description: 'x', price: '1.00', previousPrice: 'NaN' }]),
      (e: unknown) => e instanceof BranchlineError && e.code === 'BL-L002' && e.message.includes('"X-17"'),
    );
    const text = await pdfText(
      renderLabelsPdf([{ code: 'C1', description: 'd', price: '0.30', previousPrice: '1999999999999999.99', currency: 'US$' }], { decimalSeparator: '.' }),
    );
    assert.equal(occurrences(text, 'US$ 0.30'), 1);
    assert.equal(occurrences(text, 'US$ 1999999999999999.99'), 1);
  });

  test('the date a price takes effect is printed in the time zone asked for', async () => {
    const labels = [{ code: 'C1', description: 'd', price: '1.00', effectiveAt: new Date('2025-03-02T01:00:00Z') }];
    assert.equal(occurrences(await pdfText(renderLabelsPdf(labels)), '2025-03-02'), 1);
    const inSaoPaulo = await pdfText(renderLabelsPdf(labels, { timeZone: 'America/Sao_Paulo' }));
    assert.equal(occurrences(inSaoPaulo, '2025-03-01'), 1);
    assert.equal(occurrences(inSaoPaulo, '2025-03-02'), 0);
  });

  test('no labels give one empty page; the title is in the metadata', async () => {
    const pdf = renderLabelsPdf([], { title: 'Etiquetas — loja Nº 7' });
    assert.equal((await pdfInfo(pdf)).pages, 1);
    assert.equal((await pdfText(pdf)).trim(), '');
    assert.match(await poppler('pdfinfo', pdf), /^Title:\s+Etiquetas — loja Nº 7$/m);
  });
});

describe('renderLabelsPdf: the file itself', () => {
  test('the same labels and creation time give the same bytes', async () => {
    const a = renderLabelsPdf(products(), { title: 'T', createdAt: CREATED_AT });
    await new Promise((r) => setTimeout(r, 5));
    const b = renderLabelsPdf(products(), { title: 'T', createdAt: new Date(CREATED_AT.getTime()) });
    assert.ok(a.equals(b), 'identical bytes');
    assert.ok(renderLabelsPdf(products()).equals(renderLabelsPdf(products())), 'identical without a creation time');
    assert.ok(!a.equals(renderLabelsPdf(products(), { title: 'T', createdAt: new Date('2025-03-01T12:34:57Z') })), 'the creation time is in the file');
    assert.ok(!a.equals(renderLabelsPdf(products().reverse(), { title: 'T', createdAt: CREATED_AT })), 'the order of labels is kept');
    assert.match(a.toString('latin1'), /\/CreationDate \(D:20250301123456Z\)/);
  });

  test('the cross-reference table gives each object its exact byte offset; stream lengths are exact', () => {
    const pdf = renderLabelsPdf(products(), { createdAt: CREATED_AT });
    const raw = pdf.toString('latin1');
    assert.ok(raw.startsWith('%PDF-1.4\n'));
    assert.ok(raw.endsWith('%%EOF\n'));
    const startxref = Number(/startxref\n(\d+)\n%%EOF\n$/.exec(raw)?.[1]);
    assert.equal(raw.slice(startxref, startxref + 5), 'xref\n', 'startxref points at the table');
    const head = /^xref\n0 (\d+)\n/.exec(raw.slice(startxref));
    assert.ok(head);
    const count = Number(head[1]);
    const entries = raw.slice(startxref + head[0].length, startxref + head[0].length + 20 * count);
    assert.equal(entries.slice(0, 20), '0000000000 65535 f \n');
    for (let n = 1; n < count; n++) {
      const entry = entries.slice(20 * n, 20 * n + 20);
      assert.match(entry, /^\d{10} 00000 n \n$/, `entry ${n} is 20 bytes`);
      const offset = Number(entry.slice(0, 10));
      assert.equal(raw.slice(offset, offset + `${n} 0 obj\n`.length), `${n} 0 obj\n`, `object ${n} at ${offset}`);
    }
    assert.equal(count, 1 + 5 + 2 * 2, 'catalog, pages, 2 fonts, info, and a page + content per page');
    assert.match(raw.slice(startxref), new RegExp(`trailer\\n<< /Size ${count} /Root 1 0 R /Info 5 0 R >>`));
    const streams = [...raw.matchAll(/<< \/Length (\d+) >>\nstream\n/g)];
    assert.equal(streams.length, 2);
    for (const s of streams) {
      const start = s.index + s[0].length;
      assert.equal(raw.slice(start + Number(s[1]), start + Number(s[1]) + 10), '\nendstream', 'length up to endstream');
    }
  });
});

/** A logger writing into memory; lines() parses what arrived. */
function capture(): { logger: Logger; lines: () => Promise<Record<string, unknown>[]> } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString('utf8')));
  return {
    logger: createLogger({ stream, level: 'debug' }),
    async lines() {
      await new Promise((r) => setTimeout(r, 50));
      return text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    },
  };
}

describe('LabelWriter', () => {
  const now = (): Date => new Date(CREATED_AT.getTime());
  const labels = products().slice(0, 3);

  test('writes a PDF per call into a new folder, named by store and second, numbered within the second', async () => {
    const folder = path.join(await mkdtemp(path.join(work, 'w-')), 'labels', 'new');
    const writer = new LabelWriter({ folder, logger: silentLogger(), now });
    assert.equal(await writer.write('S01', []), null);
    await assert.rejects(stat(folder), { code: 'ENOENT' }, 'nothing written for no labels');
    const first = await writer.write('S01', labels);
    assert.deepEqual(first, { file: path.join(folder, 'labels-S01-20250301T123456Z-1.pdf'), printed: false });
    // Two calls at once, in the same second: two files, in call order.
    const [second, third, other] = await Promise.all([
      writer.write('S01', labels.slice(0, 1)),
      writer.write('S01', labels),
      writer.write('loja/7', labels),
    ]);
    assert.equal(second?.file, path.join(folder, 'labels-S01-20250301T123456Z-2.pdf'));
    assert.equal(third?.file, path.join(folder, 'labels-S01-20250301T123456Z-3.pdf'));
    assert.equal(other?.file, path.join(folder, 'labels-loja_7-20250301T123456Z-1.pdf'));
    assert.deepEqual((await readdir(folder)).sort(), [
      'labels-S01-20250301T123456Z-1.pdf',
      'labels-S01-20250301T123456Z-2.pdf',
      'labels-S01-20250301T123456Z-3.pdf',
      'labels-loja_7-20250301T123456Z-1.pdf',
    ], 'no temporary file left');
    const text = await pdfText(await readFile(second!.file));
    assert.equal(occurrences(text, labels[0]!.description), 1);
    assert.equal(occurrences(text, labels[1]!.description), 0);
  });

  test('a relative folder gives absolute file names', async () => {
    const folder = path.relative(process.cwd(), await mkdtemp(path.join(work, 'rel-')));
    const written = await new LabelWriter({ folder, logger: silentLogger(), now }).write('S1', labels);
    assert.equal(written?.file, path.resolve(folder, 'labels-S1-20250301T123456Z-1.pdf'));
  });

  test('the print command gets the file: in place of {file}, or as its last argument', async () => {
    const folder = await mkdtemp(path.join(work, 'print-'));
    const copy = path.join(work, 'printed-copy.pdf');
    const placeholder = new LabelWriter({
      folder,
      logger: silentLogger(),
      now,
      printCommand: [process.execPath, '-e', 'require("fs").copyFileSync(process.argv[1], process.argv[2])', '{file}', copy],
    });
    const a = await placeholder.write('S1', labels);
    assert.equal(a?.printed, true);
    assert.ok((await readFile(copy)).equals(await readFile(a!.file)), 'the command read the whole PDF');

    const marker = path.join(work, 'printed-argument.txt');
    const appended = new LabelWriter({
      folder,
      logger: silentLogger(),
      now,
      printCommand: [process.execPath, '-e', `require("fs").writeFileSync(${JSON.stringify(marker)}, JSON.stringify(process.argv.slice(1)))`, 'shelf-printer', 'copies=1'],
    });
    const b = await appended.write('S1', labels);
    assert.equal(b?.printed, true);
    assert.deepEqual(JSON.parse(await readFile(marker, 'utf8')), ['shelf-printer', 'copies=1', b!.file]);
  });

  test('a failing print command is logged and reported, not thrown; the PDF stays', async () => {
    const folder = await mkdtemp(path.join(work, 'fail-'));
    const log = capture();
    const writer = new LabelWriter({
      folder,
      logger: log.logger,
      now,
      printCommand: [process.execPath, '-e', 'process.stderr.write("printer on fire " + "x".repeat(2000)); process.exit(3)'],
    });
    const written = await writer.write('S1', labels);
    assert.equal(written?.printed, false);
    assert.ok((await readFile(written.file)).subarray(0, 8).equals(Buffer.from('%PDF-1.4')));
    const warn = (await log.lines()).find((l) => l['level'] === 'warn');
    assert.ok(warn, 'a warning');
    assert.equal(warn['exitCode'], 3);
    assert.equal(warn['store'], 'S1');
    assert.equal(warn['file'], written.file);
    assert.equal(warn['program'], process.execPath);
    assert.equal(warn['stderr'], `printer on fire ${'x'.repeat(500 - 16)}`, 'the first 500 characters of stderr');
    assert.ok(!JSON.stringify(warn).includes('process.exit'), 'arguments are not logged');
  });

  test('a missing or hanging print command gives printed: false', async () => {
    const folder = await mkdtemp(path.join(work, 'hang-'));
    const log = capture();
    const missing = await new LabelWriter({ folder, logger: log.logger, now, printCommand: [path.join(work, 'no-such-lp'), '-d', 'x'] }).write('S1', labels);
    assert.equal(missing?.printed, false);
    const started = Date.now();
    const hanging = await new LabelWriter({
      folder,
      logger: log.logger,
      now,
      printTimeoutMs: 300,
      printCommand: [process.execPath, '-e', 'setTimeout(() => {}, 20000)'],
    }).write('S1', labels);
    assert.equal(hanging?.printed, false);
    assert.ok(Date.now() - started < 10_000, 'killed at the timeout');
    const warnings = (await log.lines()).filter((l) => l['level'] === 'warn');
    assert.deepEqual(
      warnings.map((w) => [w['exitCode'], w['error'], w['signal'], w['timeoutMs']]),
      [
        [null, 'ENOENT', undefined, undefined],
        [null, undefined, 'SIGTERM', 300],
      ],
    );
    assert.equal((await readdir(folder)).length, 2, 'both PDFs stay');
  });

  test('a folder that cannot be created is BL-L001, naming the folder and the OS error', async () => {
    const file = path.join(work, 'a-regular-file');
    await writeFile(file, 'not a folder');
    const folder = path.join(file, 'labels');
    const writer = new LabelWriter({ folder, logger: silentLogger(), now });
    await assert.rejects(writer.write('S1', labels), (e: unknown) => {
      assert.ok(e instanceof BranchlineError);
      assert.equal(e.code, 'BL-L001');
      assert.ok(e.message.includes(folder) && e.message.includes('ENOTDIR'), e.message);
      assert.match(e.hint ?? '', /labels\.folder/);
      return true;
    });
    // The writer goes on after a failure.
    await assert.rejects(writer.write('S1', labels), { code: 'BL-L001' });
  });
});
