import type pg from 'pg';
import type { TargetOp } from '../core/target-op.js';
import type { Entity } from '../mapping/entities.js';
import { bounded, connect, endClient, quoteIdent } from '../db/connect.js';
import { lookupBranchCodes } from './association-store.js';
import { translateChunk, unknownCodes, type KeyTranslator, type Resolution } from './resolver.js';

export interface DownAssociationResolverOptions {
  readonly storeCode: string;
  readonly entities: ReadonlyMap<string, Entity>;
  /** HQ, where the associations are kept. */
  readonly hqUrl: string;
  /** Bounds each look-up at HQ (and, 10 s later, its answer on our side: a link that stalls without a reset); `apply.statement_timeout_ms`. */
  readonly statementTimeoutMs: number;
}

/** Cached associations per entity (HQ key -> store code); a cap bounds memory. */
const CACHE_LIMIT = 200_000;

/**
 * The down channel's translation: HQ keys in a chunk become the store's
 * codes (`branchline.associations` at HQ, read backwards).
 *
 * An HQ key the store has no code for yet:
 * - of an `allocate` entity with a `store_sequence` (a customer registered at
 *   HQ or at another store): the store's next value of that sequence becomes
 *   its code, and the association is recorded at HQ at once, before the
 *   store transaction commits. If that transaction is lost, the redelivered
 *   change finds the association and uses the same code: never two codes for
 *   one HQ record (the sequence value is simply not reused);
 * - a delete of an allocated key the store never had: nothing to remove;
 * - otherwise (a manual entity): the change is parked at the store until a
 *   person associates the key (`branchline associate`) and it is retried.
 *
 * It keeps its own connection to HQ; the store transaction is the sink's.
 */
export class DownAssociationResolver implements KeyTranslator {
  private readonly cache = new Map<string, Map<string, string>>();
  private hq: pg.Client | null = null;

  constructor(private readonly options: DownAssociationResolverOptions) {}

  async resolve(storeDb: pg.ClientBase, ops: readonly TargetOp[]): Promise<Resolution> {
    const { unknown, allocatable } = unknownCodes(ops, (entity, key) => this.known(entity, key));
    if (unknown.size > 0) {
      const hq = await this.hqClient();
      try {
        for (const [entity, keys] of unknown) {
          const found = await lookupBranchCodes(hq, this.options.storeCode, entity, [...keys]);
          const cache = this.entityCache(entity);
          for (const [key, code] of found) cache.set(key, code);
          const sequence = this.options.entities.get(entity)?.storeSequence;
          const toAllocate = [...(allocatable.get(entity) ?? [])].filter((k) => !found.has(k));
          if (toAllocate.length === 0 || !sequence) continue;
          // The store's own next codes, then the associations at HQ (a concurrent writer's win stands).
          const seq = `${quoteIdent(sequence.schema)}.${quoteIdent(sequence.table)}`;
          const codes = await storeDb.query<{ code: string }>(`SELECT nextval($1::regclass)::text AS code FROM generate_series(1, $2)`, [seq, toAllocate.length]);
          await hq.query(
            `INSERT INTO branchline.associations (store_code, entity, branch_code, hq_key, origin, created_by)
             SELECT $1, $2, c, k, 'allocated', 'branchline (down)' FROM unnest($3::text[], $4::text[]) AS u(c, k)
             ON CONFLICT DO NOTHING`,
            [this.options.storeCode, entity, codes.rows.map((r) => r.code), toAllocate],
          );
          for (const [key, code] of await lookupBranchCodes(hq, this.options.storeCode, entity, toAllocate)) cache.set(key, code);
        }
      } catch (e) {
        await this.dropHq();
        throw e;
      }
    }
    return translateChunk(ops, (entity, key) => this.known(entity, key));
  }

  /** Whether HQ now holds a store code for any of these HQ keys (`branchline associate` made one): parked changes may go. */
  async associatedAny(waiting: readonly { readonly entity: string; readonly code: string }[]): Promise<boolean> {
    const byEntity = new Map<string, string[]>();
    for (const w of waiting) byEntity.set(w.entity, [...(byEntity.get(w.entity) ?? []), w.code]);
    const hq = await this.hqClient();
    try {
      for (const [entity, keys] of byEntity) if ((await lookupBranchCodes(hq, this.options.storeCode, entity, keys)).size > 0) return true;
      return false;
    } catch (e) {
      await this.dropHq();
      throw e;
    }
  }

  /** Associations are recorded at HQ as they are made: nothing waits for the store's commit. */
  commit(): void {}

  rollback(): void {}

  async close(): Promise<void> {
    await this.dropHq();
  }

  private known(entity: string, key: string): string | undefined {
    return this.cache.get(entity)?.get(key);
  }

  private entityCache(entity: string): Map<string, string> {
    let m = this.cache.get(entity);
    if (!m) {
      m = new Map();
      this.cache.set(entity, m);
    }
    if (m.size >= CACHE_LIMIT) m.clear();
    return m;
  }

  private async hqClient(): Promise<pg.Client> {
    if (this.hq) return this.hq;
    const c = await connect(this.options.hqUrl, {
      role: 'HQ',
      applicationName: `branchline-down-${this.options.storeCode}-associations`,
      ...bounded(this.options.statementTimeoutMs),
    });
    c.on('error', () => void this.dropHq());
    this.hq = c;
    return c;
  }

  private async dropHq(): Promise<void> {
    const c = this.hq;
    this.hq = null;
    if (c) await endClient(c);
  }
}
