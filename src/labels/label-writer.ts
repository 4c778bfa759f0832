import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { BranchlineError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { renderLabelsPdf, type ShelfLabel } from './label-pdf.js';

export interface LabelWriterOptions {
  /** Where the PDFs go (created if missing). */
  readonly folder: string;
  /**
   * A program and its arguments, run without a shell for each PDF: every
   * `{file}` in an argument becomes the PDF's absolute path; without one the
   * path is appended. Null or absent: the PDFs are only written.
   */
  readonly printCommand?: readonly string[] | null;
  readonly logger: Logger;
  /** The clock for file names and the PDF's creation date. */
  readonly now?: () => Date;
  readonly decimalSeparator?: ',' | '.';
  /** Time zone in which label dates are printed (see LabelsPdfOptions). */
  readonly timeZone?: string;
  /** How long the print command may run before it is killed; default 30 s. */
  readonly printTimeoutMs?: number;
}

export interface WrittenLabels {
  /** Absolute path of the PDF. */
  readonly file: string;
  /** Whether the print command ran and exited with 0 (false when there is none). */
  readonly printed: boolean;
}

const PRINT_TIMEOUT_MS = 30_000;
const STDERR_LOGGED = 500;

/**
 * Writes shelf labels as PDF files into a folder, one file per call, and hands
 * each to a print command. A file appears whole or not at all (written under
 * a hidden temporary name, then renamed), named
 * `labels-<store>-<YYYYMMDDTHHMMSSZ>-<n>.pdf` with n counting files of the
 * same second. Calls are handled one at a time, in order. A failing print
 * command is logged, never thrown: the PDF stays for printing by hand.
 */
export class LabelWriter {
  private readonly folder: string;
  private readonly printCommand: readonly string[] | null;
  private readonly logger: Logger;
  private readonly now: () => Date;
  private readonly decimalSeparator: ',' | '.';
  private readonly timeZone: string;
  private readonly printTimeoutMs: number;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: LabelWriterOptions) {
    if (options.printCommand && options.printCommand.length === 0) throw new Error('LabelWriter: printCommand names no program');
    this.folder = path.resolve(options.folder);
    this.printCommand = options.printCommand ?? null;
    this.logger = options.logger;
    this.now = options.now ?? (() => new Date());
    this.decimalSeparator = options.decimalSeparator ?? ',';
    this.timeZone = options.timeZone ?? 'UTC';
    this.printTimeoutMs = options.printTimeoutMs ?? PRINT_TIMEOUT_MS;
  }

  /**
   * Writes one PDF with a label per entry and prints it; null (and nothing
   * written) for no labels. Throws BL-L001 when the folder cannot be created
   * or written, BL-L002 for a price that is not decimal text.
   */
  write(storeCode: string, labels: readonly ShelfLabel[]): Promise<WrittenLabels | null> {
    if (labels.length === 0) return Promise.resolve(null);
    const done = this.queue.then(() => this.writeNow(storeCode, labels));
    this.queue = done.catch(() => undefined);
    return done;
  }

  private async writeNow(storeCode: string, labels: readonly ShelfLabel[]): Promise<WrittenLabels> {
    const log = this.logger.child({ store: storeCode });
    const at = this.now();
    const pdf = renderLabelsPdf(labels, {
      title: `Shelf labels, store ${storeCode}`,
      createdAt: at,
      decimalSeparator: this.decimalSeparator,
      timeZone: this.timeZone,
    });
    const file = await this.save(`labels-${safeName(storeCode)}-${stamp(at)}`, pdf);
    log.info('shelf labels written', { file, labels: labels.length });
    const printed = this.printCommand ? await this.print(this.printCommand, file, log) : false;
    return { file, printed };
  }

  /** Writes under a temporary name, then renames to the first free `<base>-<n>.pdf`. */
  private async save(base: string, pdf: Buffer): Promise<string> {
    try {
      await mkdir(this.folder, { recursive: true });
    } catch (e) {
      throw folderError(this.folder, e);
    }
    const temp = path.join(this.folder, `.${base}-${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
    try {
      const handle = await open(temp, 'wx');
      try {
        await handle.writeFile(pdf);
        await handle.sync();
      } finally {
        await handle.close();
      }
      for (let n = 1; ; n++) {
        const file = path.join(this.folder, `${base}-${n}.pdf`);
        if (await exists(file)) continue;
        await rename(temp, file);
        return file;
      }
    } catch (e) {
      await rm(temp, { force: true }).catch(() => undefined);
      throw folderError(this.folder, e);
    }
  }

  private print(command: readonly string[], file: string, log: Logger): Promise<boolean> {
    const [program, ...rest] = command as [string, ...string[]];
    const args = rest.some((a) => a.includes('{file}')) ? rest.map((a) => a.replaceAll('{file}', file)) : [...rest, file];
    return new Promise((resolve) => {
      const failed = (fields: Record<string, unknown>): void => {
        // Only the program's name: its arguments may carry a printer password.
        log.warn('shelf labels: the print command failed; the PDF stays in the folder', { file, program, ...fields });
        resolve(false);
      };
      try {
        execFile(program, args, { timeout: this.printTimeoutMs, windowsHide: true }, (error, _stdout, stderr) => {
          if (!error) {
            log.info('shelf labels sent to the print command', { file, program });
            resolve(true);
            return;
          }
          const code: unknown = (error as { code?: unknown }).code;
          failed({
            exitCode: typeof code === 'number' ? code : null,
            ...(typeof code === 'string' ? { error: code } : {}),
            ...(error.signal ? { signal: error.signal } : {}),
            ...(error.killed && error.signal ? { timeoutMs: this.printTimeoutMs } : {}),
            stderr: String(stderr).slice(0, STDERR_LOGGED),
          });
        });
      } catch (e) {
        failed({ exitCode: null, error: e instanceof Error ? e.message : String(e) });
      }
    });
  }
}

function folderError(folder: string, e: unknown): BranchlineError {
  const code = (e as NodeJS.ErrnoException | undefined)?.code ?? (e instanceof Error ? e.message : String(e));
  return new BranchlineError(
    {
      code: 'BL-L001',
      message: `cannot write shelf labels to the folder ${folder} (${code})`,
      hint: 'Give the agent write access to that folder, or point `labels.folder` in the configuration file at one it can write.',
    },
    { cause: e },
  );
}

async function exists(file: string): Promise<boolean> {
  try {
    await lstat(file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** YYYYMMDDTHHMMSSZ in UTC. */
function stamp(d: Date): string {
  return `${d.toISOString().replace(/[-:]/g, '').slice(0, 15)}Z`;
}

/** The store code as a file-name part: anything but letters, digits, '-' and '_' becomes '_'. */
function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9_-]/g, '_') || '_';
}
