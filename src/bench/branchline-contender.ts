import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { AgentProcess, type AgentCommand } from './agent-process.js';
import type { Contender, Probe } from './contender.js';
import { withControlClients } from './probe-client.js';
import type { ProcessRef } from './cpu-tracker.js';
import { GiveUp, waitFor } from './wait.js';
import { pausePipelines, resumePipelines } from '../pause/pauses.js';
import { HQ_DB, type BenchTopology } from './topology.js';

/**
 * How a phase starts and stops branchline. `resume`: one agent runs
 * throughout, and a phase is `branchline resume` / `pause` of every store's
 * up pipeline (the same statement the commands run, on an open connection),
 * as ALTER SUBSCRIPTION ... ENABLE / DISABLE is for native replication.
 * `spawn`: `branchline run` is started for the phase and stopped (SIGTERM)
 * after it, start-up included in the phase.
 */
export type StartBy = 'resume' | 'spawn';

/** The pause's author and reason, as `status` would show them. */
const BENCH_PAUSE = { by: 'npm run bench', reason: 'between benchmark phases' } as const;

/**
 * branchline: `branchline run` as a child process serving every store,
 * started and stopped as `StartBy` says.
 */
export class BranchlineContender implements Contender {
  readonly name = 'branchline' as const;
  private agent: AgentProcess | null = null;
  private runs = 0;
  /** Date.now() of the last start(): milestones count from it. */
  private startedAt = 0;

  private constructor(
    private readonly topology: BenchTopology,
    private readonly command: AgentCommand,
    private readonly cpuProfDir: string | undefined,
    private readonly startBy: StartBy,
    /** One per stores server. */
    private readonly storesAdmin: pg.Client[],
    private readonly hqAdmin: pg.Client,
  ) {}

  static async create(topology: BenchTopology, command: AgentCommand, cpuProfDir: string | undefined, startBy: StartBy = 'spawn'): Promise<BranchlineContender> {
    return withControlClients(
      async (open) =>
        new BranchlineContender(
          topology,
          command,
          cpuProfDir,
          startBy,
          await Promise.all(topology.storeServers.map((s) => open(s.url('postgres')))),
          await open(topology.hqServer.url(HQ_DB)),
        ),
    );
  }

  /**
   * `resume`: pauses every store's up pipeline and starts the agent, which
   * then waits with its streams closed; resolves once it says so for every
   * store. Call before the first phase (the backlog is written after it).
   */
  async standBy(timeoutMs: number): Promise<void> {
    if (this.startBy !== 'resume') return;
    await pausePipelines(this.hqAdmin, this.pipelineNames(), BENCH_PAUSE.by, BENCH_PAUSE.reason);
    this.spawn();
    const stores = this.topology.stores.length;
    await waitFor('the branchline agent to start with its pipelines paused', timeoutMs, async () => {
      await this.assertRunning();
      return (await this.agent!.logged(PAUSED_MESSAGE)) >= stores;
    });
  }

  async start(): Promise<void> {
    this.startedAt = Date.now();
    if (this.startBy === 'resume') {
      if (!this.agent?.pid) throw new Error('the agent is not running: standBy() starts it');
      await resumePipelines(this.hqAdmin, this.pipelineNames());
      return;
    }
    this.spawn();
  }

  private spawn(): void {
    if (this.agent?.pid) throw new Error('the agent is already running');
    this.runs++;
    const prof = this.cpuProfDir ? { dir: path.resolve(this.cpuProfDir), name: `agent-${this.runs}-${process.pid}.cpuprofile` } : null;
    this.agent = new AgentProcess(this.command, this.topology.configFile, path.join(this.topology.dir, `agent-${this.runs}.log`), prof);
    this.agent.start();
  }

  private pipelineNames(): string[] {
    return this.topology.stores.map((s) => `up:${s.code}`);
  }

  async waitStreaming(timeoutMs: number): Promise<void> {
    const slots = this.slots();
    await waitFor('the branchline agent to stream', timeoutMs, async () => {
      await this.assertRunning();
      const pid = this.agentPid()!;
      const streaming = await this.hqAdmin.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM branchline.pipeline_status WHERE state = 'streaming' AND agent = $1`,
        [`${os.hostname()}:${pid}`],
      );
      return streaming.rows[0]?.n === slots.length && (await this.activeSlots()).length === slots.length;
    });
  }

  async stop(): Promise<void> {
    if (this.startBy === 'resume' && this.agent?.pid) await pausePipelines(this.hqAdmin, this.pipelineNames(), BENCH_PAUSE.by, BENCH_PAUSE.reason);
    else {
      await this.agent?.stop();
      await this.agent?.dispose();
    }
    await waitFor('the agent to release its slots', 60_000, async () => (await this.activeSlots()).length === 0);
  }

  rowsProbes(): Probe[] {
    return [{ url: this.topology.hqUrl, sql: `SELECT ((SELECT count(*) FROM store_sale) + (SELECT count(*) FROM store_sale_line))::text AS n`, params: [] }];
  }

  maxSaleProbe(storeIndex: number): Probe {
    const s = this.topology.stores[storeIndex]!;
    return { url: this.topology.hqUrl, sql: `SELECT coalesce(max(sale_id), 0)::text AS n FROM store_sale WHERE store_code = $1`, params: [s.code] };
  }

  async processes(): Promise<ProcessRef[]> {
    const [senders, backends] = await Promise.all([
      this.activeSlots(),
      this.hqAdmin.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'branchline-up:%'`),
    ]);
    const agent = this.agentPid();
    return [
      ...(agent === null ? [] : [{ role: 'agent', pid: agent }]),
      ...senders.map((pid) => ({ role: 'decode', pid })),
      ...backends.rows.map((r) => ({ role: 'apply', pid: r.pid })),
    ];
  }

  agentPid(): number | null {
    return this.agent?.pid ?? null;
  }

  /**
   * From the agent's JSON log, seconds from the last start(): `agent started`
   * (configuration read, mappings checked against HQ and the stores; spawn
   * only) and the last `replication starting` since then (every store's
   * stream open). Log timestamps have millisecond resolution.
   */
  async milestones(): Promise<Record<string, number>> {
    const file = this.agent?.logFile;
    if (!file) return {};
    const text = await readFile(file, 'utf8').catch(() => '');
    const out: Record<string, number> = {};
    let streams = 0;
    for (const line of text.split('\n')) {
      let entry: { message?: string; timestamp?: string };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        continue;
      }
      if (!entry.timestamp) continue;
      const time = Date.parse(entry.timestamp);
      if (time < this.startedAt) continue;
      const at = (time - this.startedAt) / 1000;
      if (entry.message === 'agent started' && out['agentStarted'] === undefined) out['agentStarted'] = at;
      if (entry.message === 'replication starting' && ++streams === this.topology.stores.length) out['allStreamsOpen'] = at;
    }
    return out;
  }

  async assertRunning(): Promise<void> {
    if (this.agent && this.agentPid() === null) throw new GiveUp('the branchline agent exited on its own (see its log above)');
  }

  async logTail(): Promise<string> {
    return (await this.agent?.logTail()) ?? '';
  }

  async dispose(): Promise<void> {
    await this.agent?.stop().catch(() => undefined);
    await this.agent?.dispose();
    await Promise.all([...this.storesAdmin, this.hqAdmin].map((c) => c.end().catch(() => undefined)));
  }

  /** The walsender pids of the agent's slots that are in use, on every stores server. */
  private async activeSlots(): Promise<number[]> {
    const slots = this.slots();
    const rows = await Promise.all(
      this.storesAdmin.map((c) => c.query<{ pid: number }>(`SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = ANY($1) AND active_pid IS NOT NULL`, [slots])),
    );
    return rows.flatMap((r) => r.rows.map((row) => row.pid));
  }

  private slots(): string[] {
    return this.topology.stores.map((s) => s.branchlineSlot);
  }
}

/** What the agent logs for a pipeline it keeps stopped (src/pause/pause-watch.ts). */
const PAUSED_MESSAGE = 'pipeline paused: it stays stopped until `branchline resume`';
