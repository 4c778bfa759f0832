import { PgLogicalSource, LSN_CODEC } from '../../connectors/pg-logical/index.js';
import { PgSink } from '../apply/pg-sink.js';
import { AssociationResolver } from '../associate/resolver.js';
import type { Config, StoreConfig } from '../config/load.js';
import { isBranchlineError, ProblemsError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Lsn } from '../core/lsn.js';
import type { MappingSet } from '../mapping/mapping.js';
import { ApplyGate } from '../pipeline/apply-gate.js';
import { Backoff } from '../pipeline/backoff.js';
import { Pipeline, type PipelineHooks, type PipelineSnapshot } from '../pipeline/pipeline.js';
import { checkAndCompile, loadMappings, mappingProblems, readCatalog, requireReadable, storeRole, tablesOf, type Catalog } from './prepare.js';

export interface AgentOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** Stores to serve (default: every enabled store). */
  readonly stores?: readonly StoreConfig[];
  readonly hooks?: (store: StoreConfig) => PipelineHooks;
}

/**
 * One agent process: an up pipeline per store it serves, sharing a bound on
 * concurrent HQ transactions. Start-up fails only for what a person must fix
 * (a broken mapping file); unreachable databases are waited for.
 */
export class Agent {
  private mappings: MappingSet | null = null;
  private files: Awaited<ReturnType<typeof loadMappings>> | null = null;
  private hq: Catalog | null = null;
  private readonly pipelines = new Map<string, Pipeline<Lsn>>();
  private readonly gate: ApplyGate;
  private readonly stores: readonly StoreConfig[];

  constructor(private readonly options: AgentOptions) {
    this.gate = new ApplyGate(options.config.apply.concurrency);
    this.stores = options.stores ?? options.config.stores.filter((s) => s.enabled);
  }

  /**
   * Loads and checks the mappings: syntax and schema first (no database),
   * then against HQ (waited for while unreachable) and every store that
   * answers now. Any mapping problem stops start-up with all the messages.
   */
  async prepare(signal: AbortSignal): Promise<void> {
    const { config, logger } = this.options;
    const files = await loadMappings(config);
    this.files = files;
    const { sources, targets } = tablesOf(files);
    const backoff = new Backoff(config.retry);
    while (!signal.aborted) {
      try {
        this.hq = await readCatalog(config.hq.url, 'HQ', targets);
        break;
      } catch (e) {
        if (!isBranchlineError(e) || !e.code.startsWith('BL-D')) throw e;
        // Broken files need no HQ to be reported: do not wait for it first.
        requireReadable(files);
        const delay = backoff.next();
        logger.warn('HQ not reachable at start-up; waiting', { code: e.code, error: e.message, retryInMs: delay });
        await new Promise((r) => setTimeout(r, delay));
      }
    }
    if (!this.hq) return;
    // Checked against HQ alone first, so a mapping problem is reported even with every store down.
    this.mappings = checkAndCompile(files, this.hq, null, 'HQ');
    const hq = this.hq;
    // Every reachable store at once; the problems of all of them reported together, in configuration order.
    const results = await Promise.all(
      this.stores.map(async (store) => {
        try {
          return { store, problems: mappingProblems(files, hq, await readCatalog(store.url, storeRole(store), sources, 5_000)) };
        } catch (e) {
          if (isBranchlineError(e) && e.code.startsWith('BL-D')) {
            logger.warn('store not reachable at start-up; its pipeline will connect when it can', { store: store.code, code: e.code, error: e.message });
            return { store, problems: [] };
          }
          throw e;
        }
      }),
    );
    const failing = results.filter((r) => r.problems.length > 0);
    if (failing.length) {
      const seen = new Set<string>();
      const problems = failing.flatMap((r) => r.problems).filter((p) => {
        const k = `${p.location?.file}:${p.location?.line}:${p.location?.column}:${p.code}:${p.message}`;
        return seen.has(k) ? false : (seen.add(k), true);
      });
      problems.sort(
        (a, b) =>
          (a.location?.file ?? '').localeCompare(b.location?.file ?? '') ||
          (a.location?.line ?? 0) - (b.location?.line ?? 0) ||
          (a.location?.column ?? 0) - (b.location?.column ?? 0),
      );
      const codes = failing.map((r) => r.store.code);
      throw new ProblemsError(
        `The mapping files in ${files.dir} do not fit HQ and ${codes.length === 1 ? `store ${codes[0]}` : `stores ${codes.join(', ')}`}.`,
        problems,
      );
    }
  }

  /** Runs every pipeline until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    if (!this.mappings) await this.prepare(signal);
    if (signal.aborted || !this.hq || !this.mappings) return;
    const { config, logger } = this.options;
    const hq = this.hq;
    // Compiled once: mappings are pure and hold no per-store state.
    const mappings = this.mappings;
    const runs = this.stores.map((store) => {
      const log = logger.child({ store: store.code, pipeline: `up:${store.code}` });
      const source = new PgLogicalSource({
        url: store.url,
        role: storeRole(store),
        slot: store.slot,
        publication: store.publication,
        logger: log,
        statusIntervalMs: config.source.statusIntervalMs,
        silenceTimeoutMs: config.source.silenceTimeoutMs,
        // Keep decoding while HQ applies a chunk: room for two.
        highWaterMark: Math.max(5_000, config.batch.chunkRows * 2),
      });
      const id = { name: `up:${store.code}`, storeCode: store.code, direction: 'up' as const, connector: store.connector };
      // One per store, across sessions: the associations it has read stay cached.
      const associations = new AssociationResolver(store.code, this.files?.entities.byName ?? new Map());
      const pipeline = new Pipeline<Lsn>({
        id,
        source,
        sink: () =>
          new PgSink({
            url: config.hq.url,
            role: 'HQ',
            pipeline: id,
            positionKind: LSN_CODEC.kind,
            catalog: hq.tables,
            targetOrder: mappings.targetOrder,
            statementTimeoutMs: config.apply.statementTimeoutMs,
            sessionReplicationRole: config.apply.sessionReplicationRole,
            associations,
            logger: log,
          }),
        mappings,
        context: { storeCode: store.code },
        batch: config.batch,
        retry: config.retry,
        gate: this.gate,
        logger: log,
        ...(this.options.hooks ? { hooks: this.options.hooks(store) } : {}),
      });
      this.pipelines.set(store.code, pipeline);
      log.info('pipeline starting');
      return pipeline.run(signal);
    });
    await Promise.all(runs);
  }

  snapshot(): Map<string, PipelineSnapshot> {
    return new Map([...this.pipelines].map(([code, p]) => [code, p.snapshot()]));
  }
}
