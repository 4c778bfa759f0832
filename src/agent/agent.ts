import { setMaxListeners } from 'node:events';
import { PgSink } from '../apply/pg-sink.js';
import { AssociationResolver } from '../associate/resolver.js';
import type { Config, ReportsConfig, StoreConfig } from '../config/load.js';
import { parseCron } from '../reports/cron.js';
import { runReport } from '../reports/report.js';
import { runReportLoop } from '../reports/report-loop.js';
import { isBranchlineError, ProblemsError } from '../core/errors.js';
import { redact, type Logger } from '../core/logger.js';
import type { MappingSet } from '../mapping/mapping.js';
import { createMetrics, type Metrics } from '../metrics/metrics.js';
import { startHttpSurface, type HttpSurface } from './http-surface.js';
import { ApplyGate } from '../pipeline/apply-gate.js';
import { Backoff } from '../pipeline/backoff.js';
import { Pipeline, type PipelineHooks, type PipelineSnapshot } from '../pipeline/pipeline.js';
import { checkAndCompile, checkAndCompileDown, downMappingProblems, downTablesOf, hasDown, loadMappings, mappingProblems, readCatalog, requireReadable, storeRole, tablesOf, type Catalog } from './prepare.js';
import { PgTriggerSource, XID8_CODEC, type XidPosition } from '../../connectors/pg-trigger/index.js';
import { DownAssociationResolver } from '../associate/down-resolver.js';
import { downRowFilter } from './down-route-filter.js';
import { purgeHqChangeLog } from './purge.js';
import { isConnectionError, isUnreachableError } from '../db/connect.js';
import { autoInitialLoad } from '../load/auto-load.js';
import { LabelCapture, type LabelTarget } from '../labels/label-capture.js';
import { LabelWriter } from '../labels/label-writer.js';
import { PendingLabels } from '../labels/pending-labels.js';
import type { TableInfo } from '../catalog/pg-catalog.js';
import { DOWN_ORIGIN, storeCapture } from './store-capture.js';
import { runCaptureMetrics } from './capture-metrics.js';
import { sleepUnlessAborted } from '../core/sleep-unless-aborted.js';
import { ClockOffset } from '../pipeline/clock-offset.js';
import { LeaseManager } from '../lease/lease-manager.js';
import { PauseWatch } from '../pause/pause-watch.js';
import type { Direction } from '../metrics/pipeline-metrics.js';

export interface AgentOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** Stores to serve (default: every enabled store). */
  readonly stores?: readonly StoreConfig[];
  readonly hooks?: (store: StoreConfig) => PipelineHooks;
  /** The agent's metrics (default: a registry of its own, with process metrics). */
  readonly metrics?: Metrics;
  /** Run the scheduled report when `reports:` is configured (default true; a centrally configured store agent does not). */
  readonly reports?: boolean;
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
  private readonly pipelines = new Map<string, Pipeline<unknown>>();
  private readonly downPipelines = new Map<string, Pipeline<XidPosition>>();
  /** The pipelines this agent runs behind the pause gate (`up:S001`), whether or not they have started. */
  private readonly gated = new Set<string>();
  /** HQ's catalog of the down files' source tables. */
  private hqDown: Catalog | null = null;
  /** Each reachable store's catalog of the down files' targets, read at start-up. */
  private readonly storeDown = new Map<string, Catalog>();
  private readonly gate: ApplyGate;
  private readonly stores: readonly StoreConfig[];
  /** Each database's clock offset from this agent's, shared by the pipelines that read or write it (lag is measured in one clock). */
  private readonly clocks = new Map<string, ClockOffset>();
  /** The pipelines paused at HQ (`branchline pause`), once the pipelines run. */
  private pauses: PauseWatch | null = null;

  private clockOf(url: string, role: string): ClockOffset {
    let c = this.clocks.get(url);
    if (!c) this.clocks.set(url, (c = new ClockOffset({ url, role, logger: this.options.logger.child({ database: role }) })));
    return c;
  }

  constructor(private readonly options: AgentOptions) {
    this.gate = new ApplyGate(options.config.apply.concurrency);
    this.stores = options.stores ?? options.config.stores.filter((s) => s.enabled);
    // Process metrics (event-loop and GC observers) only where something can read them: at /metrics.
    this.metrics = options.metrics ?? createMetrics(options.config.stores.map((s) => s.code), { processMetrics: options.config.http !== null });
  }

  /** What the agent exports at /metrics. */
  readonly metrics: Metrics;
  /** Where the agent serves HTTP (null: `http:` not configured, or not started yet). */
  http: HttpSurface | null = null;

  /**
   * Loads and checks the mappings: syntax and schema first (no database),
   * then against HQ (waited for while unreachable) and every store that
   * answers now. Any mapping problem stops start-up with all the messages.
   */
  async prepare(signal: AbortSignal): Promise<void> {
    setMaxListeners(0, signal); // see run()
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
        if (!isUnreachableError(e)) throw e;
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
    const down = hasDown(files);
    const { hqSources, storeTargets } = downTablesOf(files);
    if (down) this.hqDown = await readCatalog(config.hq.url, 'HQ', hqSources);
    const hqDown = this.hqDown;
    // Every reachable store at once; the problems of all of them reported together, in configuration order.
    const results = await Promise.all(
      this.stores.map(async (store) => {
        try {
          const capture = storeCapture(store);
          const problems = mappingProblems(files, hq, await capture.catalog(sources, 5_000));
          if (down && hqDown && capture.postgres) {
            const catalog = await readCatalog(store.url, storeRole(store), storeTargets, 5_000);
            this.storeDown.set(store.code, catalog);
            problems.push(...downMappingProblems(files, hqDown, catalog));
          }
          return { store, problems };
        } catch (e) {
          if (isUnreachableError(e)) {
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

  /** Runs every pipeline (and the HTTP server, when configured) until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    // Each store's pipelines, loops and back-off sleeps listen to the stop signal while they run, so the number of
    // listeners grows with the stores (one or more a store), never with time: no "possible memory leak" warning
    // for an agent serving eleven stores or a hundred.
    setMaxListeners(0, signal);
    // HTTP first: /health and a store's questions to HQ answer while HQ is still awaited.
    this.http = await startHttpSurface({
      config: this.options.config,
      logger: this.options.logger,
      metrics: this.metrics,
      pipelines: () => this.pipelineStates(),
    });
    try {
      await this.runPipelines(signal);
    } finally {
      await this.http?.close();
      this.http = null;
    }
  }

  private async runPipelines(signal: AbortSignal): Promise<void> {
    if (!this.mappings) await this.prepare(signal);
    if (signal.aborted || !this.hq || !this.mappings) return;
    const { config, logger } = this.options;
    // Only down files: nothing goes up, so no up pipeline (and no slot to read).
    const up = (this.files?.files ?? []).some((f) => f.spec.enabled);
    const down = this.files !== null && hasDown(this.files);
    const pauses = new PauseWatch({ hqUrl: config.hq.url, logger: logger.child({ task: 'pauses' }), retry: config.retry });
    this.pauses = pauses;
    const runs: Promise<void>[] = [pauses.run(signal)];
    if (down) runs.push(this.purgeLoop(signal));
    if (config.reports && (this.options.reports ?? true)) runs.push(this.reportLoop(config.reports, signal));
    const byCode = new Map(this.stores.map((s) => [s.code, s]));
    if (config.lease)
      // Several agents at HQ: a store's work runs only while this agent holds its lease.
      runs.push(
        new LeaseManager({
          lease: config.lease,
          hqUrl: config.hq.url,
          stores: [...byCode.keys()],
          logger,
          metrics: this.metrics.leases,
          work: (code, s) => this.runStore(byCode.get(code)!, { up, down }, s),
        }).run(signal),
      );
    else for (const store of this.stores) runs.push(this.runStore(store, { up, down }, signal));
    await Promise.all(runs);
  }

  /**
   * Everything one store needs, until `signal` aborts: its up pipeline and
   * the purge of its change table, its down pipeline, and its capture
   * metrics. Started and stopped on its own (by its lease, with `lease:`).
   */
  private async runStore(store: StoreConfig, channels: { readonly up: boolean; readonly down: boolean }, signal: AbortSignal): Promise<void> {
    const { config, logger } = this.options;
    const runs: Promise<void>[] = [];
    if (channels.up) runs.push(this.unlessPaused(store, 'up', signal, (s) => this.runUp(store, s)), this.purgeStoresLoop([store], signal));
    if (channels.down) runs.push(this.unlessPaused(store, 'down', signal, (s) => this.runDown(store, s)));
    // Slot lag and WAL retained, read every status interval for /metrics (only where something can read them).
    if (channels.up && config.http)
      runs.push(
        runCaptureMetrics(
          { stores: [store], metrics: this.metrics, position: (code) => this.pipelines.get(code)?.snapshot().position ?? null, intervalMs: config.source.statusIntervalMs, logger },
          signal,
        ),
      );
    if (!config.lease) this.metrics.leases.held(store.code, true);
    await Promise.all(runs);
  }

  /** One pipeline's work, kept stopped while it is paused at HQ (`branchline pause`), started again on `resume`. */
  private unlessPaused(store: StoreConfig, direction: Direction, signal: AbortSignal, work: (signal: AbortSignal) => Promise<void>): Promise<void> {
    const name = `${direction}:${store.code}`;
    const log = this.options.logger.child({ store: store.code, pipeline: name });
    this.gated.add(name);
    return this.pauses!.gate(name, signal, work, { log, onPaused: () => this.metrics.paused(store.code, direction) }).finally(() => this.gated.delete(name));
  }

  /**
   * Every pipeline this agent runs and its state, by name (`up:S001`), as
   * /health shows them; one paused since before it ever started is there
   * too, as `paused`.
   */
  pipelineStates(): Record<string, string> {
    const states: Record<string, string> = {};
    for (const [code, p] of this.snapshot()) states[`up:${code}`] = p.state;
    for (const [code, p] of this.downSnapshot()) states[`down:${code}`] = p.state;
    for (const name of this.gated) if (!(name in states) && this.pauses?.paused(name)) states[name] = 'paused';
    return states;
  }

  /** The up pipeline of one store: its capture -> the up mappings -> HQ, position in HQ's transaction. */
  private async runUp(store: StoreConfig, signal: AbortSignal): Promise<void> {
    const { config, logger } = this.options;
    const hq = this.hq!;
    // Compiled once: mappings are pure and hold no per-store state.
    const mappings = this.mappings!;
    const log = logger.child({ store: store.code, pipeline: `up:${store.code}` });
    const capture = storeCapture(store);
    const source = capture.source(config, log);
    const id = { name: `up:${store.code}`, storeCode: store.code, direction: 'up' as const, connector: store.connector };
    // One per store, across sessions: the associations it has read stay cached (not across leases: another agent may have served it meanwhile).
    const associations = new AssociationResolver(store.code, this.files?.entities.byName ?? new Map());
    const pipeline: Pipeline<unknown> = new Pipeline<unknown>({
      id,
      source,
      sink: () =>
        new PgSink({
          url: config.hq.url,
          role: 'HQ',
          pipeline: id,
          positionKind: capture.positionKind,
          catalog: hq.tables,
          targetOrder: mappings.targetOrder,
          statementTimeoutMs: config.apply.statementTimeoutMs,
          sessionReplicationRole: config.apply.sessionReplicationRole,
          copyMinRows: config.apply.copyMinRows,
          associations,
          // HQ's change log records whose changes these are: they go down to the other stores, not back to this one.
          origin: { name: store.code },
          logger: log,
        }),
      mappings,
      context: { storeCode: store.code },
      batch: config.batch,
      retry: config.retry,
      gate: this.gate,
      logger: log,
      metrics: this.metrics.pipeline(store.code, 'up', () => viewOf(pipeline)),
      // A SQL Server store's clock is not read (connect() is PostgreSQL's): its commit times are taken as the agent's.
      ...(capture.postgres ? { clocks: { source: this.clockOf(store.url, storeRole(store)), target: this.clockOf(config.hq.url, 'HQ') } } : {}),
      ...(this.options.hooks ? { hooks: this.options.hooks(store) } : {}),
    });
    this.pipelines.set(store.code, pipeline);
    log.info('pipeline starting');
    try {
      await pipeline.run(signal);
    } finally {
      // Handed back (lease): no longer this agent's to report.
      if (config.lease && this.pipelines.get(store.code) === pipeline) this.pipelines.delete(store.code);
    }
  }

  /**
   * The down pipeline of one store: HQ's change log (pg-trigger, read from
   * the store's own cursor, without what came from this store) -> the down
   * mappings -> the store, position in the store's transaction. Compiled
   * against the store's schema once the store answers.
   */
  private async runDown(store: StoreConfig, signal: AbortSignal): Promise<void> {
    const { config, logger } = this.options;
    const files = this.files!;
    const log = logger.child({ store: store.code, pipeline: `down:${store.code}` });
    if (!storeCapture(store).postgres) {
      log.error('this store gets no master data from HQ: the down channel writes to PostgreSQL stores only (not built for SQL Server); its up pipeline runs', {
        code: 'BL-C003',
        connector: store.connector,
        hint: 'Leave the store out of the down mappings\' routes, or move it to PostgreSQL; see docs/connectors.md.',
      });
      return;
    }
    const backoff = new Backoff(config.retry);
    let mappings: MappingSet | null = null;
    while (!signal.aborted && !mappings) {
      try {
        const hqDown = this.hqDown ?? (await readCatalog(config.hq.url, 'HQ', downTablesOf(files).hqSources));
        this.hqDown = hqDown;
        const catalog = this.storeDown.get(store.code) ?? (await readCatalog(store.url, storeRole(store), downTablesOf(files).storeTargets, 5_000));
        this.storeDown.set(store.code, catalog);
        mappings = checkAndCompileDown(files, hqDown, catalog, `HQ and ${storeRole(store)}`);
      } catch (e) {
        if (!isUnreachableError(e)) {
          log.error('down mappings do not fit this store; its down pipeline does not start', { error: e instanceof Error ? e.message : String(e) });
          return;
        }
        const delay = backoff.next();
        log.warn('store not reachable; the down pipeline waits', { code: e.code, error: e.message, retryInMs: delay });
        await new Promise((r) => setTimeout(r, delay));
      }
    }
    if (!mappings || signal.aborted) return;
    if (config.down.initialLoad === 'auto' && !(await this.initialLoadIfNeeded(store, log, signal))) return;
    const compiled = mappings;
    const capture = storeCapture(store);
    const name = `down:${store.code}`;
    const id = { name, storeCode: store.code, direction: 'down' as const, connector: 'pg-trigger' };
    const source = new PgTriggerSource({
      url: config.hq.url,
      role: 'HQ',
      logger: log,
      pollMs: config.down.pollMs,
      pageRows: config.batch.chunkRows,
      reader: name,
      skipOrigin: store.code,
      // Rows routed to other stores are not even read.
      rowFilter: downRowFilter(files.down, store.code),
      requireStart: true,
      reloadCommand: `\`branchline snapshot --store ${store.code}\``,
      statementTimeoutMs: config.apply.statementTimeoutMs,
    });
    const associations = new DownAssociationResolver({ storeCode: store.code, entities: files.entities.byName, hqUrl: config.hq.url, statementTimeoutMs: config.apply.statementTimeoutMs });
    const catalog = this.storeDown.get(store.code)!;
    const labels = this.labelsFor(store, compiled, catalog.tables, log);
    const pipeline: Pipeline<XidPosition> = new Pipeline<XidPosition>({
      id,
      source,
      sink: () =>
        new PgSink({
          url: store.url,
          role: storeRole(store),
          pipeline: id,
          positionKind: XID8_CODEC.kind,
          catalog: catalog.tables,
          targetOrder: compiled.targetOrder,
          statementTimeoutMs: config.apply.statementTimeoutMs,
          associations,
          origin: { name: DOWN_ORIGIN, ...(capture.downReplicationOrigin ? { replicationOrigin: capture.downReplicationOrigin } : {}) },
          plainInserts: false,
          logger: log,
        }),
      mappings: compiled,
      context: { storeCode: store.code },
      batch: config.batch,
      retry: config.retry,
      gate: this.gate,
      logger: log,
      schedule: { timeZone: store.timeZone },
      ...(labels ? { labels } : {}),
      metrics: this.metrics.pipeline(store.code, 'down', () => viewOf(pipeline)),
      clocks: { source: this.clockOf(config.hq.url, 'HQ'), target: this.clockOf(store.url, storeRole(store)) },
      ...(this.options.hooks ? { hooks: this.options.hooks(store) } : {}),
    });
    this.downPipelines.set(store.code, pipeline);
    log.info('down pipeline starting');
    try {
      await pipeline.run(signal);
    } finally {
      if (config.lease && this.downPipelines.get(store.code) === pipeline) this.downPipelines.delete(store.code);
      await associations.close();
    }
  }

  /**
   * `down.initial_load: auto`: loads a store that was never loaded (or
   * resumes its unfinished load) before its down pipeline streams; waits for
   * unreachable databases. False when the load cannot be done (logged) or
   * the agent is stopping.
   */
  private async initialLoadIfNeeded(store: StoreConfig, log: Logger, signal: AbortSignal): Promise<boolean> {
    const { config } = this.options;
    const backoff = new Backoff(config.retry);
    while (!signal.aborted) {
      try {
        await autoInitialLoad({ config, store, logger: log });
        return !signal.aborted;
      } catch (e) {
        // A database lost midway (HQ restarting, a link cut: pg's own error, not ours) is waited out like one unreachable at the start.
        if (!isUnreachableError(e) && !isConnectionError(e)) {
          log.error('the initial load of this store failed; its down pipeline does not start', {
            code: isBranchlineError(e) ? e.code : undefined,
            error: e instanceof Error ? e.message : String(e),
            hint: `Fix what the error says, then restart the agent or run \`branchline snapshot --store ${store.code}\`.`,
          });
          return false;
        }
        const delay = backoff.next();
        const err = e as { code?: string; message?: string };
        log.warn('initial load interrupted: a database is not reachable; it resumes from its last checkpoint', { code: err.code, error: redact(err.message ?? ''), retryInMs: delay });
        await new Promise((r) => setTimeout(r, delay));
      }
    }
    return false;
  }

  /** Shelf labels of a store's down pipeline: the labelled target tables, and where the PDFs go. Null when no mapping has labels. */
  private labelsFor(store: StoreConfig, mappings: MappingSet, tables: ReadonlyMap<string, TableInfo>, log: Logger): { capture: LabelCapture; pending: PendingLabels } | null {
    const targets: LabelTarget[] = [];
    for (const m of mappings.mappings) {
      if (!m.labels) continue;
      const info = tables.get(`${m.target.schema}.${m.target.table}`);
      const key = m.target.key.map((k) => ({ name: k, type: info?.columns.find((c) => c.name === k)?.type ?? 'text' }));
      targets.push({ mapping: m.name, table: m.target, key, ...m.labels });
    }
    if (targets.length === 0) return null;
    const settings = this.options.config.labels;
    if (!settings) {
      log.warn('down mappings have labels: but the configuration has no labels: settings (folder); no shelf labels are written', { mappings: targets.map((t) => t.mapping) });
      return null;
    }
    const name = `down:${store.code}`;
    const writer = new LabelWriter({
      folder: settings.folder.replaceAll('{store}', store.code),
      printCommand: settings.printCommand,
      decimalSeparator: settings.decimalSeparator,
      timeZone: settings.timeZone ?? store.timeZone,
      logger: log,
    });
    return {
      capture: new LabelCapture({ pipeline: name, targets }),
      pending: new PendingLabels({ pipeline: name, storeCode: store.code, writer, currency: settings.currency, logger: log }),
    };
  }

  /** Writes (and emails) the report at each time the schedule names; once per time even with several agents (HQ holds the claim). */
  private async reportLoop(reports: ReportsConfig, signal: AbortSignal): Promise<void> {
    const { config, logger } = this.options;
    const log = logger.child({ task: 'report', time_zone: reports.timeZone });
    const schedule = parseCron(reports.schedule, reports.timeZone);
    await runReportLoop({ schedule, logger: log, run: (periodEnd) => runReport({ config, reports, periodEnd, logger: log }) }, signal);
  }

  /** Purges HQ's change log below what every store applied (and below the retention), every `down.purge_interval_s`. */
  private async purgeLoop(signal: AbortSignal): Promise<void> {
    const { config, logger } = this.options;
    const log = logger.child({ task: 'change-log-purge' });
    while (!signal.aborted) {
      await sleepUnlessAborted(config.down.purgeIntervalS * 1000, signal);
      if (signal.aborted) return;
      try {
        const r = await purgeHqChangeLog(config);
        if (r.deleted > 0) log.info('purged HQ change log', { deleted: r.deleted, purgedBelow: r.purgedBelow.toString() });
        if (r.readersBehind.length > 0)
          log.error('stores were away longer than down.retention_hours and need a fresh initial load', { readers: r.readersBehind, code: 'BL-S006' });
      } catch (e) {
        log.warn('change log not purged this time', { error: e instanceof Error ? e.message : String(e) });
      }
    }
  }

  /**
   * Deletes from each trigger-fed store's change table what HQ applied
   * (never what it did not: the table is HQ's queue while HQ is away), every
   * `source.purge_interval_s`. An unreachable store is tried again next time.
   */
  private async purgeStoresLoop(stores: readonly StoreConfig[], signal: AbortSignal): Promise<void> {
    const { config, logger } = this.options;
    while (!signal.aborted) {
      await sleepUnlessAborted(config.source.purgeIntervalS * 1000, signal);
      if (signal.aborted) return;
      for (const store of stores) {
        const log = logger.child({ store: store.code, task: 'change-table-purge' });
        try {
          const r = await storeCapture(store).purge(config.apply.statementTimeoutMs);
          if (r && r.deleted > 0) log.info('purged the store\'s change table of what HQ applied', { deleted: r.deleted, purgedBelow: r.purgedBelow.toString() });
        } catch (e) {
          log.warn('store change table not purged this time', { error: e instanceof Error ? e.message : String(e) });
        }
      }
    }
  }

  snapshot(): Map<string, PipelineSnapshot> {
    return this.snapshotOf('up', this.pipelines);
  }

  /** The down pipelines, by store code. */
  downSnapshot(): Map<string, PipelineSnapshot> {
    return this.snapshotOf('down', this.downPipelines);
  }

  /** Each pipeline's snapshot; `paused` for one stopped by `branchline pause`. */
  private snapshotOf(direction: Direction, pipelines: ReadonlyMap<string, Pipeline<unknown> | Pipeline<XidPosition>>): Map<string, PipelineSnapshot> {
    return new Map(
      [...pipelines].map(([code, p]) => {
        const s = p.snapshot();
        return [code, s.state === 'stopped' && this.pauses?.paused(`${direction}:${code}`) ? { ...s, state: 'paused' } : s];
      }),
    );
  }
}

/** What /metrics reads of a pipeline at each scrape (in memory). */
function viewOf(pipeline: Pipeline<unknown> | Pipeline<XidPosition>): { oldestUnapplied: Date | null; parked: number } {
  const s = pipeline.snapshot();
  return { oldestUnapplied: s.oldestUnapplied, parked: s.parkedChanges };
}
