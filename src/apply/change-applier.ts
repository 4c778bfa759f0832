import type pg from 'pg';
import { runStatement } from './run-statement.js';
import { AssociationResolver, type KeyTranslator } from '../associate/resolver.js';
import type { TargetOp } from '../core/target-op.js';
import { behindReason, missingReason, ParkedRows, type ParkReason } from '../pipeline/parking.js';
import type { ChunkPlan } from './plan.js';

/** What applying one change needs from the sink. */
export interface ChangeApplierContext {
  readonly db: pg.ClientBase;
  readonly associations: KeyTranslator | undefined;
  /** The exact plan of some operations. */
  plan(ops: readonly TargetOp[]): ChunkPlan;
  /** A database error as branchline's (ApplyRejected for data HQ refuses). */
  mapError(e: unknown): unknown;
  /** Whether an error (mapped) is about this change's data, so the change is parked rather than the batch failed. */
  isRowProblem(e: unknown): boolean;
  /** The database's own words for such an error. */
  rejection(e: unknown): string;
}

export type ChangeOutcome =
  | { readonly kind: 'applied'; readonly rows: number; readonly ignored: number }
  | { readonly kind: 'held'; readonly reason: ParkReason };

/**
 * Applies changes one at a time inside an open HQ transaction, for the
 * exact (change by change) plan and for retries of parked changes: a change
 * whose row is held behind an earlier parked change waits too, its
 * associations are resolved (a missing one holds it), and its operations run
 * under a savepoint, so HQ rejecting its data holds it without undoing the
 * others. Rows it holds stay held for the changes after it.
 */
export class ChangeApplier {
  private readonly held = new ParkedRows();

  constructor(private readonly ctx: ChangeApplierContext) {}

  hold(mapping: string, rowKeys: readonly string[]): void {
    this.held.add(mapping, rowKeys);
  }

  async apply(change: { mapping: string; target: string; rowKeys: readonly string[] }, ops: readonly TargetOp[]): Promise<ChangeOutcome> {
    const outcome = await this.attempt(change, ops);
    if (outcome.kind === 'held') this.hold(change.mapping, change.rowKeys);
    return outcome;
  }

  private async attempt(change: { mapping: string; target: string; rowKeys: readonly string[] }, ops: readonly TargetOp[]): Promise<ChangeOutcome> {
    const { db, associations } = this.ctx;
    if (change.rowKeys.some((k) => this.held.has(change.mapping, k))) return { kind: 'held', reason: behindReason(change.mapping) };
    let ready = ops;
    if (associations && AssociationResolver.needed(ops)) {
      const r = await associations.resolve(db, ops).catch((e: unknown) => Promise.reject(this.ctx.mapError(e)));
      const u = r.unresolved[0];
      if (u) return { kind: 'held', reason: missingReason(change.mapping, change.target, u.entity, u.code) };
      ready = r.ops.filter((o): o is TargetOp => o !== null);
    }
    await db.query('SAVEPOINT branchline_change').catch((e: unknown) => Promise.reject(this.ctx.mapError(e)));
    try {
      const { statements, ignored } = this.ctx.plan(ready);
      let rows = 0;
      let notInserted = 0;
      for (const st of statements) {
        const rowCount = await runStatement(db, st);
        if (st.kind === 'insert-missing') notInserted += st.rows - rowCount;
        rows += st.rows;
      }
      await db.query('RELEASE SAVEPOINT branchline_change');
      return { kind: 'applied', rows, ignored: ignored + notInserted };
    } catch (e) {
      const mapped = this.ctx.mapError(e);
      if (!this.ctx.isRowProblem(mapped)) throw mapped;
      await db.query('ROLLBACK TO SAVEPOINT branchline_change').catch((x: unknown) => Promise.reject(this.ctx.mapError(x)));
      return { kind: 'held', reason: { code: 'BL-A004', message: `${change.mapping}: ${change.target} refused this change: ${this.ctx.rejection(mapped)}.` } };
    }
  }
}
