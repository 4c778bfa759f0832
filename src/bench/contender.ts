import type { ProcessRef } from './cpu-tracker.js';
import type { ContenderName } from './options.js';

/** One SQL query and where to run it. */
export interface Probe {
  readonly url: string;
  readonly sql: string;
  readonly params: readonly unknown[];
}

/**
 * One way of bringing the stores' rows to HQ (PostgreSQL's own logical
 * replication, or branchline), as the measurements see it: it can be
 * started and stopped, and it says how to look at what it wrote at HQ.
 * Measurements never look inside a contender beyond this.
 */
export interface Contender {
  readonly name: ContenderName;
  /** Begins replicating (the command is issued; the clock runs from just before this call). */
  start(): Promise<void>;
  /** Resolves once every store's stream is connected and applying. */
  waitStreaming(timeoutMs: number): Promise<void>;
  /** Stops replicating and waits until nothing of it runs any more. */
  stop(): Promise<void>;
  /** Queries whose results (one row, column `n`) add up to the sale + sale_line rows at HQ, all stores. */
  rowsProbes(): readonly Probe[];
  /** Query returning the highest sale id of one store present at HQ (one row, column `n`). */
  maxSaleProbe(storeIndex: number): Probe;
  /** The processes doing this contender's work right now. */
  processes(): Promise<readonly ProcessRef[]>;
  /** The agent process, for contenders that have one. */
  agentPid(): number | null;
  /** Throws GiveUp when the contender stopped on its own (e.g. the agent process exited). */
  assertRunning(): Promise<void>;
  /** The last lines of the contender's own log, for failure messages ('' when it has none). */
  logTail(): Promise<string>;
  /** Seconds from the last `start()` to named start-up events (from the agent's log), for contenders that log them. */
  milestones(): Promise<Readonly<Record<string, number>>>;
}
