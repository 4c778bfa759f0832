import type { PgSink } from '../apply/pg-sink.js';
import { isBranchlineError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { formatPrice, type ShelfLabel } from './label-pdf.js';
import type { LabelWriter } from './label-writer.js';

export interface PendingLabelsOptions {
  readonly pipeline: string;
  readonly storeCode: string;
  readonly writer: LabelWriter;
  /** Printed before prices when the row names no currency. */
  readonly currency: string | null;
  readonly logger: Logger;
}

/**
 * Turns the pipeline's pending labels (`branchline.pending_labels`, written
 * with the rows) into one PDF after the commit, runs the print command (the
 * writer does), and only then deletes them: a crash before the delete writes
 * them again at the next start, never loses them. One label per product
 * code: the newest price, struck through the price before the first change.
 */
export class PendingLabels {
  /** Something is (or may be) pending: set after a batch that recorded labels, and at start. */
  private owed = true;
  private lastFailure = 0;

  constructor(private readonly options: PendingLabelsOptions) {}

  /** More labels were recorded (the batch that recorded them committed). */
  owe(): void {
    this.owed = true;
  }

  /** Writes what is pending, outside a batch. Failures are logged and retried after 30 s; never thrown. */
  async flush(sink: PgSink): Promise<void> {
    if (!this.owed || sink.open || Date.now() - this.lastFailure < 30_000) return;
    const { pipeline, storeCode, writer, logger } = this.options;
    try {
      const rows = await sink.execute<{ id: string; code: string; description: string | null; price: string; previous_price: string | null; currency: string | null; effective_at: Date | null }>(
        `SELECT id, code, description, price, previous_price, currency, effective_at FROM branchline.pending_labels WHERE pipeline = $1 ORDER BY id`,
        [pipeline],
      );
      await sink.commitWithoutPosition();
      this.owed = false;
      if (rows.length === 0) return;
      const byCode = new Map<string, ShelfLabel>();
      for (const r of rows) {
        try {
          formatPrice(r.price);
        } catch (e) {
          logger.error('shelf label left out: its price is not a decimal number', { code: r.code, price: r.price, error: isBranchlineError(e) ? e.code : String(e) });
          continue;
        }
        const first = byCode.get(r.code);
        byCode.set(r.code, {
          code: r.code,
          description: r.description ?? '',
          price: r.price,
          currency: r.currency ?? this.options.currency,
          previousPrice: first ? (first.previousPrice ?? null) : r.previous_price,
          effectiveAt: r.effective_at,
        });
      }
      await writer.write(storeCode, [...byCode.values()]);
      await sink.execute(`DELETE FROM branchline.pending_labels WHERE pipeline = $1 AND id <= $2`, [pipeline, rows[rows.length - 1]!.id]);
      await sink.commitWithoutPosition();
    } catch (e) {
      await sink.rollback().catch(() => undefined);
      this.owed = true;
      this.lastFailure = Date.now();
      logger.warn('shelf labels not written yet; retrying in 30 s', { code: isBranchlineError(e) ? e.code : undefined, error: e instanceof Error ? e.message : String(e) });
    }
  }
}
