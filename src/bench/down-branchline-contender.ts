import path from 'node:path';
import pg from 'pg';
import { AgentProcess, type AgentCommand } from './agent-process.js';
import type { Contender, Probe } from './contender.js';
import type { ProcessRef } from './cpu-tracker.js';
import { withControlClients } from './probe-client.js';
import { GiveUp } from './wait.js';

export interface DownBranchlineSpec {
  readonly command: AgentCommand;
  readonly configFile: string;
  /** Folder for the agent's log files (one per start). */
  readonly dir: string;
  readonly cpuProfDir: string | undefined;
  /** URL of HQ's `postgres` database: the change-log readers run there. */
  readonly hqUrl: string;
  /** URL of the stores server's `postgres` database: the down pipelines' store sessions run there. */
  readonly storesUrl: string;
  readonly rowsProbes: readonly Probe[];
}

/**
 * branchline's down channel: `branchline run` with only down mappings, as a
 * child process serving every store (HQ's change log -> each store), started
 * for a phase and stopped with SIGTERM after it.
 */
export class DownBranchlineContender implements Contender {
  readonly name = 'branchline' as const;
  private agent: AgentProcess | null = null;
  private runs = 0;

  private constructor(
    private readonly spec: DownBranchlineSpec,
    private readonly hqAdmin: pg.Client,
    private readonly storesAdmin: pg.Client,
  ) {}

  static async create(spec: DownBranchlineSpec): Promise<DownBranchlineContender> {
    return withControlClients(async (open) => new DownBranchlineContender(spec, await open(spec.hqUrl), await open(spec.storesUrl)));
  }

  async start(): Promise<void> {
    if (this.agent?.pid) throw new Error('the agent is already running');
    this.runs++;
    const prof = this.spec.cpuProfDir ? { dir: path.resolve(this.spec.cpuProfDir), name: `agent-down-${this.runs}-${process.pid}.cpuprofile` } : null;
    this.agent = new AgentProcess(this.spec.command, this.spec.configFile, path.join(this.spec.dir, `agent-down-${this.runs}.log`), prof);
    this.agent.start();
  }

  async waitStreaming(): Promise<void> {
    throw new Error('the down scenario has no live phase');
  }

  async stop(): Promise<void> {
    await this.agent?.stop();
    await this.agent?.dispose();
  }

  rowsProbes(): readonly Probe[] {
    return this.spec.rowsProbes;
  }

  maxSaleProbe(): Probe {
    throw new Error('the down scenario has no live phase');
  }

  async processes(): Promise<ProcessRef[]> {
    const [readers, sessions] = await Promise.all([
      this.hqAdmin.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE application_name = 'branchline-trigger-reader'`),
      this.storesAdmin.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'branchline-down:%'`),
    ]);
    const agent = this.agentPid();
    return [
      ...(agent === null ? [] : [{ role: 'agent', pid: agent }]),
      ...readers.rows.map((r) => ({ role: 'decode', pid: r.pid })),
      ...sessions.rows.map((r) => ({ role: 'apply', pid: r.pid })),
    ];
  }

  agentPid(): number | null {
    return this.agent?.pid ?? null;
  }

  async assertRunning(): Promise<void> {
    if (this.agent && this.agentPid() === null) throw new GiveUp('the branchline agent exited on its own (see its log above)');
  }

  async logTail(): Promise<string> {
    return (await this.agent?.logTail()) ?? '';
  }

  /** Lines of the running (or last) agent's log with this message. */
  async logged(message: string): Promise<number> {
    return (await this.agent?.logged(message)) ?? 0;
  }

  async milestones(): Promise<Record<string, number>> {
    return {};
  }

  async dispose(): Promise<void> {
    await this.agent?.dispose();
    await Promise.all([this.hqAdmin, this.storesAdmin].map((c) => c.end().catch(() => undefined)));
  }
}
