import type { Logger } from '../core/logger.js';
import { bounded, connect, endClient } from '../db/connect.js';
import { readClock, type ClockSample } from '../doctor/clock.js';

export interface ClockOffsetOptions {
  readonly url: string;
  /** For messages: "HQ", "store S001". */
  readonly role: string;
  readonly logger: Logger;
  /** A reading older than this is taken again (default 60 s). */
  readonly refreshMs?: number;
}

/** Readings per measurement: the one with the shortest round trip is kept (its middle is closest to when the server read its clock). */
const SAMPLES = 3;

/**
 * How far a database's clock is from this agent's: its `clock_timestamp()`
 * minus the middle of the round trip, re-read every minute. A pipeline
 * turns the source's commit times into the agent's clock with it (lag and
 * oldest-unapplied age in /metrics), and times it writes into a database
 * into that database's clock (so HQ compares them with its own now()). See
 * docs/operations.md, "Lag and clocks". 0 until a reading succeeds, and
 * kept when one fails (the database may be down: the pipeline says so).
 */
export class ClockOffset {
  private offset = 0;
  private readAt = 0;
  private reading: Promise<void> | null = null;

  constructor(private readonly options: ClockOffsetOptions) {}

  /** Database clock minus agent clock, ms (positive: the database is ahead). */
  get offsetMs(): number {
    return this.offset;
  }

  /** A time the database wrote, in the agent's clock. */
  toLocal(d: Date): Date {
    return new Date(d.getTime() - this.offset);
  }

  /** A time of the agent's clock, in the database's. */
  fromLocal(d: Date): Date {
    return new Date(d.getTime() + this.offset);
  }

  /** Reads the clock again when the last reading is older than refreshMs; never throws. */
  async refresh(): Promise<void> {
    if (Date.now() - this.readAt < (this.options.refreshMs ?? 60_000)) return;
    this.reading ??= this.measure().finally(() => (this.reading = null));
    await this.reading;
  }

  private async measure(): Promise<void> {
    try {
      // Bounded like every other connection of a session: a link that stalls without a reset must not hold the session's start.
      const db = await connect(this.options.url, {
        role: this.options.role,
        applicationName: 'branchline-clock',
        connectTimeoutMs: 5_000,
        ...bounded(5_000),
      });
      try {
        let best: ClockSample | null = null;
        for (let i = 0; i < SAMPLES; i++) {
          const s = await readClock(db);
          if (!best || s.receivedAt - s.sentAt < best.receivedAt - best.sentAt) best = s;
        }
        const offset = Math.round(best!.serverAt - (best!.sentAt + best!.receivedAt) / 2);
        if (Math.abs(offset - this.offset) >= 1_000) this.options.logger.info('database clock offset measured', { database: this.options.role, offsetMs: offset, roundTripMs: best!.receivedAt - best!.sentAt });
        this.offset = offset;
        this.readAt = Date.now();
      } finally {
        await endClient(db);
      }
    } catch (e) {
      // Tried again in 10 s, not at every call.
      this.readAt = Date.now() - (this.options.refreshMs ?? 60_000) + 10_000;
      this.options.logger.debug('database clock not read', { database: this.options.role, error: (e as Error).message });
    }
  }
}
