import { readCatalog } from '../agent/prepare.js';
import type { Config } from '../config/load.js';
import { BranchlineError, isBranchlineError, ProblemsError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { loadMappingDir, type LoadedMappingFile } from '../mapping/index.js';
import type { EntitySet } from '../mapping/entities.js';
import type { SettlementMetrics } from '../metrics/metrics.js';
import { checkRequest, type CheckRequest, type SettlementAnswer, type Verdict } from './answer.js';
import { SettlementChecker } from './checker.js';
import { withDeadline } from './record-reader.js';
import { settlementRules } from './rules.js';

export interface SettlementServiceOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics?: SettlementMetrics;
}

/** Where a check reads the record's state: at its origin store (HQ asking), or at HQ (a store asking). */
export type CheckTarget = 'store' | 'hq';

/**
 * What the CLI and the HTTP route call. Reads the mapping folder once, and
 * compiles the settlement rules against HQ's catalog at the first check that
 * reaches HQ (an agent at a store may start while HQ is away: a store
 * asking HQ then gets `unavailable`, recorded at the store).
 */
export class SettlementService {
  private files: Promise<{ files: LoadedMappingFile[]; entities: EntitySet }> | null = null;
  private checker: SettlementChecker | null = null;
  private compiling: Promise<SettlementChecker> | null = null;
  /** Only records, for answers given without HQ's catalog. */
  private readonly recorder: SettlementChecker;

  constructor(private readonly options: SettlementServiceOptions) {
    this.recorder = new SettlementChecker({ ...options, rules: new Map() });
  }

  /** The kinds of record the mapping files declare. */
  async kinds(): Promise<string[]> {
    const { files } = await this.mappingFiles();
    return files.filter((f) => f.spec.enabled && f.spec.direction === 'up' && f.spec.settlement).map((f) => f.spec.settlement!.kind);
  }

  /** Checks `raw` requests (BL-K001/BL-K002 before anything is asked: all or none) and answers them in order. */
  async check(caller: string, raw: readonly unknown[], at: CheckTarget): Promise<SettlementAnswer[]> {
    const requests = await this.parse(raw, at);
    let checker: SettlementChecker;
    try {
      checker = await this.compiled();
    } catch (e) {
      if (!isBranchlineError(e) || !/^BL-D00[12]$/.test(e.code) || at !== 'hq') throw e;
      // A store asking HQ while HQ is away: the answer is `unavailable`, and the decision the ERP's.
      const verdicts: Verdict[] = requests.map(() => ({ status: 'unavailable', originAmount: null, reason: 'unreachable', detail: `${e.problem.message} The decision is the ERP's.` }));
      return this.recorder.finish('hq', caller, requests, verdicts, Date.now(), this.recorder.storeAuditFor(requests));
    }
    return at === 'store' ? checker.checkStores(caller, requests) : checker.checkHq(caller, requests);
  }

  async close(): Promise<void> {
    const checker = this.checker ?? (await this.compiling?.catch(() => null)) ?? null;
    await Promise.all([checker?.close(), this.recorder.close()]);
  }

  private async parse(raw: readonly unknown[], at: CheckTarget): Promise<CheckRequest[]> {
    const max = this.options.config.settlement.maxRefs;
    if (raw.length === 0) throw new BranchlineError({ code: 'BL-K002', message: 'no record to check.', hint: 'Send at least one {"store", "ref", "amount"}.' });
    if (raw.length > max)
      throw new BranchlineError({
        code: 'BL-K002',
        message: `${raw.length} records in one call, more than settlement.max_refs (${max}).`,
        hint: `Send at most ${max} per call, or raise settlement.max_refs.`,
      });
    const kinds = await this.kinds();
    const stores = new Set(this.options.config.stores.map((s) => s.code));
    const requests = raw.map((r, i) => checkRequest(r as Record<string, unknown>, raw.length === 1 ? 'the check' : `checks[${i}]`, stores, kinds));
    if (at === 'hq') {
      const { files } = await this.mappingFiles();
      for (const kind of new Set(requests.map((r) => r.kind))) {
        const file = files.find((f) => f.spec.enabled && f.spec.direction === 'up' && f.spec.settlement?.kind === kind)!;
        if (!file.spec.settlement!.atHq)
          throw new BranchlineError({
            code: 'BL-K001',
            message: `kind "${kind}" (${file.file}) does not say how HQ's copy is read.`,
            hint: 'Add settlement: at_hq: {amount, settled, deleted} to the mapping file (docs/settlement.md).',
          });
      }
    }
    if (at === 'hq' && new Set(requests.map((r) => r.store)).size > 1)
      throw new BranchlineError({
        code: 'BL-K002',
        message: 'a check asked of HQ names several stores; a store asks HQ about its own records.',
        hint: 'Send one call per store.',
      });
    return requests;
  }

  private mappingFiles(): Promise<{ files: LoadedMappingFile[]; entities: EntitySet }> {
    this.files ??= (async () => {
      const loaded = await loadMappingDir(this.options.config.mappingsDir);
      if (loaded.problems.length) throw new ProblemsError(`The mapping files have ${loaded.problems.length} problem${loaded.problems.length === 1 ? '' : 's'}.`, loaded.problems);
      return loaded;
    })();
    this.files.catch(() => (this.files = null));
    return this.files;
  }

  /** The checker, once HQ's catalog has been read (retried at the next check when HQ was away). */
  private compiled(): Promise<SettlementChecker> {
    if (this.checker) return Promise.resolve(this.checker);
    this.compiling ??= (async () => {
      const { files, entities } = await this.mappingFiles();
      const targets = files.filter((f) => f.spec.enabled && f.spec.direction === 'up' && f.spec.settlement).map((f) => f.spec.target);
      const hq = this.options.config.hq;
      const catalog = await withDeadline(
        readCatalog(hq.readUrl, 'HQ', targets, hq.settlementTimeoutMs),
        hq.settlementTimeoutMs,
        () => new BranchlineError({ code: 'BL-D001', message: `HQ did not answer within ${hq.settlementTimeoutMs} ms.`, hint: 'Check the link to HQ; branchline asks again at the next check.' }),
      );
      const rules = settlementRules(files, { target: catalog.tables, targetTables: catalog.all, entities });
      this.checker = new SettlementChecker({ ...this.options, rules });
      return this.checker;
    })();
    this.compiling.catch(() => (this.compiling = null));
    return this.compiling;
  }
}
