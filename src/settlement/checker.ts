import type { Config, StoreConfig } from '../config/load.js';
import type { Logger } from '../core/logger.js';
import type { SettlementMetrics } from '../metrics/metrics.js';
import { judge, type CheckRequest, type SettlementAnswer, type Verdict } from './answer.js';
import { AuditLog, type AuditEntry } from './audit.js';
import { PgRecordReader } from './pg-record-reader.js';
import { RoundFailure, type RecordReader } from './record-reader.js';
import type { SettlementRule, SettlementRules } from './rules.js';

export interface SettlementCheckerOptions {
  readonly config: Config;
  readonly rules: SettlementRules;
  readonly logger: Logger;
  readonly metrics?: SettlementMetrics;
}

/** A group of requests one round answers: one store, one kind. */
interface Group {
  readonly store: StoreConfig;
  readonly rule: SettlementRule;
  /** Positions in the caller's list. */
  readonly indexes: number[];
  readonly requests: CheckRequest[];
}

/**
 * Pre-settlement checks (docs/settlement.md). `checkStores`: HQ asks each
 * record's origin store, one statement per store and kind, every store at
 * once, each within its timeout. `checkHq`: a store asks HQ about records
 * of its own. Every answer is recorded by the side that asked before it is
 * returned; when the record cannot be written, no answer is given (BL-D001).
 */
export class SettlementChecker {
  private readonly readers = new Map<string, Promise<RecordReader>>();
  private readonly hqAudit: AuditLog;
  private readonly storeAudits = new Map<string, AuditLog>();
  private readonly stores: ReadonlyMap<string, StoreConfig>;

  constructor(private readonly options: SettlementCheckerOptions) {
    this.stores = new Map(options.config.stores.map((s) => [s.code, s]));
    this.hqAudit = new AuditLog({ url: options.config.hq.url, role: 'HQ', timeoutMs: options.config.hq.settlementTimeoutMs });
  }

  /** HQ asks each record's origin store. */
  async checkStores(caller: string, requests: readonly CheckRequest[]): Promise<SettlementAnswer[]> {
    const started = Date.now();
    const verdicts = new Array<Verdict>(requests.length);
    await Promise.all(this.groups(requests).map((g) => this.askStore(g, verdicts)));
    return this.finish('store', caller, requests, verdicts, started, this.hqAudit);
  }

  /** A store asks HQ about records of its own (`store` is the store asking). */
  async checkHq(caller: string, requests: readonly CheckRequest[]): Promise<SettlementAnswer[]> {
    const started = Date.now();
    const verdicts = new Array<Verdict>(requests.length);
    // (The service refused kinds without at_hq before anything was asked.)
    await Promise.all(this.groups(requests).map((g) => this.askHq(g, verdicts)));
    return this.finish('hq', caller, requests, verdicts, started, this.storeAuditFor(requests));
  }

  /** Where checks a store asked HQ are recorded: that store (one per call); null for a SQL Server store (logged instead). */
  storeAuditFor(requests: readonly CheckRequest[]): AuditLog | null {
    const codes = new Set(requests.map((r) => r.store));
    if (codes.size !== 1) throw new Error('internal: a check asked of HQ names several stores');
    return this.storeAudit(this.stores.get([...codes][0]!)!);
  }

  async close(): Promise<void> {
    await Promise.all([...this.readers.values()].map(async (r) => (await r.catch(() => null))?.close()));
    await Promise.all([this.hqAudit.close(), ...[...this.storeAudits.values()].map((a) => a.close())]);
  }

  private groups(requests: readonly CheckRequest[]): Group[] {
    const groups = new Map<string, Group>();
    requests.forEach((r, i) => {
      const rule = this.options.rules.get(r.kind);
      if (!rule) throw new Error(`internal: kind ${r.kind} was resolved without a rule`);
      const key = `${r.store}\u0000${rule.kind}`;
      let g = groups.get(key);
      if (!g) {
        g = { store: this.stores.get(r.store)!, rule, indexes: [], requests: [] };
        groups.set(key, g);
      }
      g.indexes.push(i);
      g.requests.push(r);
    });
    return [...groups.values()];
  }

  /** The reader of one database, made at its first round (SQL Server's driver is loaded only for a SQL Server store). */
  private reader(key: string, url: string, role: string, timeoutMs: number, sqlServer = false): Promise<RecordReader> {
    let r = this.readers.get(key);
    if (!r) {
      r = sqlServer
        ? import('./mssql-record-reader.js').then((m) => new m.MssqlRecordReader({ url, role, timeoutMs }))
        : Promise.resolve(new PgRecordReader({ url, role, timeoutMs }));
      this.readers.set(key, r);
    }
    return r;
  }

  private hqReader(): Promise<RecordReader> {
    const hq = this.options.config.hq;
    return this.reader('hq', hq.readUrl, 'HQ', hq.settlementTimeoutMs);
  }

  private storeAudit(store: StoreConfig): AuditLog | null {
    if (store.connector === 'mssql-trigger') return null;
    let a = this.storeAudits.get(store.code);
    if (!a) {
      a = new AuditLog({ url: store.url, role: `store ${store.code}`, timeoutMs: store.settlementTimeoutMs });
      this.storeAudits.set(store.code, a);
    }
    return a;
  }

  /** One group at its store: translate HQ keys (if the kind says so), read, and tell a deleted record from an unknown one. */
  private async askStore(g: Group, verdicts: Verdict[]): Promise<void> {
    const { store, rule } = g;
    const set = (j: number, v: Verdict) => (verdicts[g.indexes[j]!] = v);
    // The store's codes of the records (HQ's keys translated when the kind takes HQ's keys).
    let codes: (string | null)[] = g.requests.map((r) => r.ref);
    if (rule.refEntity) {
      try {
        codes = await this.branchCodes(store.code, rule.refEntity, codes as string[]);
      } catch (e) {
        if (!(e instanceof RoundFailure)) throw e;
        g.requests.forEach((_, j) => set(j, unavailable(e.reason, `HQ's associations could not be read: ${e.message}`)));
        return;
      }
    }
    const asked: number[] = [];
    codes.forEach((c, j) => {
      if (c === null) set(j, unavailable('unknown', `HQ has no ${rule.refEntity} with key ${g.requests[j]!.ref} associated with store ${store.code}.`));
      else asked.push(j);
    });
    if (asked.length === 0) return;
    const reader = await this.reader(`store:${store.code}`, store.readUrl, `store ${store.code}`, store.settlementTimeoutMs, store.connector === 'mssql-trigger');
    const t0 = process.hrtime.bigint();
    let found;
    try {
      found = await reader.read({ table: rule.source, refColumn: rule.ref, refType: null, columns: rule.atStore.columns }, asked.map((j) => codes[j]!));
    } catch (e) {
      if (!(e instanceof RoundFailure)) throw e;
      this.options.logger.warn('settlement check: store not reached', { store: store.code, reason: e.reason, error: e.message });
      for (const j of asked) set(j, unavailable(e.reason, e.message));
      return;
    } finally {
      this.options.metrics?.observeRound(store.code, 'store', Number(process.hrtime.bigint() - t0) / 1e9);
    }
    const missing: number[] = [];
    asked.forEach((j, k) => {
      const v = judge(rule.atStore, found.get(k), g.requests[j]!.amount, `store ${store.code}`, store.code);
      if (v) set(j, v);
      else missing.push(j);
    });
    if (missing.length === 0) return;
    // Not at the store: deleted there if HQ holds the copy that came from it, unknown otherwise.
    let atHq: ReadonlyMap<number, unknown> = new Map();
    try {
      atHq = await (await this.hqReader()).read(
        {
          table: rule.target,
          refColumn: rule.hqRef,
          refType: rule.hqRefType,
          columns: [],
          filters: [{ column: rule.hqStore, value: store.code }],
          ...(rule.hqRefEntity ? { association: { store: store.code, entity: rule.hqRefEntity } } : {}),
        },
        missing.map((j) => codes[j]!),
      );
    } catch (e) {
      if (!(e instanceof RoundFailure)) throw e;
    }
    missing.forEach((j, k) =>
      set(
        j,
        atHq.has(k)
          ? { status: 'deleted', originAmount: null, reason: null, detail: `store ${store.code} no longer holds the record, which HQ received from it: it was deleted there.` }
          : unavailable('unknown', `store ${store.code} holds no record with this reference, and HQ has none from it either.`),
      ),
    );
  }

  /** One group at HQ: HQ's copy of the store's records. */
  private async askHq(g: Group, verdicts: Verdict[]): Promise<void> {
    const { store, rule } = g;
    const set = (j: number, v: Verdict) => (verdicts[g.indexes[j]!] = v);
    const read = rule.atHq;
    if (!read) throw new Error(`internal: kind ${rule.kind} has no at_hq`);
    const t0 = process.hrtime.bigint();
    let found;
    try {
      found = await (await this.hqReader()).read(
        {
          table: rule.target,
          refColumn: rule.hqRef,
          refType: rule.hqRefType,
          columns: read.columns,
          filters: [{ column: rule.hqStore, value: store.code }],
          ...(rule.hqRefEntity ? { association: { store: store.code, entity: rule.hqRefEntity } } : {}),
        },
        g.requests.map((r) => r.ref),
      );
    } catch (e) {
      if (!(e instanceof RoundFailure)) throw e;
      this.options.logger.warn('settlement check: HQ not reached', { store: store.code, reason: e.reason, error: e.message });
      g.requests.forEach((_, j) => set(j, unavailable(e.reason, `${e.message} The decision is the ERP's.`)));
      return;
    } finally {
      this.options.metrics?.observeRound(store.code, 'hq', Number(process.hrtime.bigint() - t0) / 1e9);
    }
    g.requests.forEach((r, j) =>
      set(
        j,
        judge(read, found.get(j), r.amount, 'HQ', store.code) ??
          unavailable('unknown', `HQ holds no record of store ${store.code} with this reference (the store's latest changes may not have reached HQ yet).`),
      ),
    );
  }

  /** HQ keys of `entity` -> the store's codes, through HQ's associations (null: none). */
  private async branchCodes(store: string, entity: string, keys: readonly string[]): Promise<(string | null)[]> {
    const found = await (await this.hqReader()).read(
      { table: { schema: 'branchline', table: 'associations' }, refColumn: 'hq_key', refType: 'text', columns: ['branch_code'], filters: [{ column: 'store_code', value: store }, { column: 'entity', value: entity }] },
      keys,
    );
    return keys.map((_, i) => found.get(i)?.[0]?.['branch_code'] ?? null);
  }

  /** Stamps, records and counts the answers (also the service's, when HQ could not even be asked). */
  async finish(
    asked: 'store' | 'hq',
    caller: string,
    requests: readonly CheckRequest[],
    verdicts: readonly Verdict[],
    started: number,
    audit: AuditLog | null,
  ): Promise<SettlementAnswer[]> {
    const duration = Date.now() - started;
    const entries: AuditEntry[] = requests.map((r, i) => ({
      caller,
      asked,
      store: r.store,
      kind: r.kind,
      ref: r.ref,
      amount: r.amount,
      status: verdicts[i]!.status,
      originAmount: verdicts[i]!.originAmount,
      reason: verdicts[i]!.reason,
      detail: verdicts[i]!.detail,
      durationMs: duration,
    }));
    let recorded: { ids: string[]; at: Date } | null = null;
    if (audit) recorded = await audit.record(entries);
    else this.options.logger.info('settlement checks (no audit table at a SQL Server store)', { asked, caller, checks: entries });
    const at = (recorded?.at ?? new Date()).toISOString();
    const answers = entries.map(
      (e, i): SettlementAnswer => ({
        check_id: recorded?.ids[i] ?? null,
        asked,
        store: e.store,
        kind: e.kind,
        ref: e.ref,
        amount: e.amount,
        status: e.status,
        origin_amount: e.originAmount,
        reason: e.reason,
        detail: e.detail,
        checked_at: at,
      }),
    );
    const counts = new Map<string, number>();
    for (const a of answers) counts.set(`${a.store}\u0000${a.status}`, (counts.get(`${a.store}\u0000${a.status}`) ?? 0) + 1);
    for (const [k, n] of counts) {
      const [store, status] = k.split('\u0000') as [string, SettlementAnswer['status']];
      this.options.metrics?.answered(store, asked, status, n);
    }
    return answers;
  }
}

function unavailable(reason: 'unreachable' | 'unknown' | 'error', detail: string): Verdict {
  return { status: 'unavailable', originAmount: null, reason, detail };
}
