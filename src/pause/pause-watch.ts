import type { Logger } from '../core/logger.js';
import { watchHq } from '../db/hq-watch.js';
import { hasPausesTable, PAUSE_CHANNEL, readPauses, type Pause } from './pauses.js';

export interface PauseWatchOptions {
  readonly hqUrl: string;
  readonly logger: Logger;
  /** How often to look without a notification (ms). Default 5 s. */
  readonly pollMs?: number;
  /** Reconnect back-off. */
  readonly retry?: { readonly initialMs: number; readonly maxMs: number };
}

/** What a pipeline's work is told while it is kept stopped. */
export interface PauseHooks {
  readonly log: Logger;
  /** The pipeline is paused and nothing of it runs (after the work stopped, or before it ever started). */
  readonly onPaused?: (pause: Pause) => void;
}

/**
 * The paused pipelines (`branchline pause`), as HQ's table says, kept
 * current by one HQ connection (LISTEN, and a look every few seconds), and
 * the gate a pipeline's work runs behind: started once the table has been
 * read and the pipeline is not in it, stopped (its signal aborted: the
 * open batch rolls back, the stream closes) when it is paused, started
 * again when it is resumed. While HQ is away the last reading stands.
 */
export class PauseWatch {
  private pauses = new Map<string, Pause>();
  private known = false;
  private readonly listeners = new Set<() => void>();
  private warnedMissing = false;

  constructor(private readonly options: PauseWatchOptions) {}

  /** Until `signal` aborts; never throws. */
  run(signal: AbortSignal): Promise<void> {
    const { hqUrl, logger } = this.options;
    return watchHq({
      hqUrl,
      applicationName: 'branchline-pause-watch',
      channel: PAUSE_CHANNEL,
      what: 'pipeline pauses',
      look: async (db) => {
        if (await hasPausesTable(db)) return this.update(await readPauses(db));
        // An HQ schema older than this agent: nothing can be paused there (the sink says to run install).
        if (!this.warnedMissing) logger.warn('HQ has no table of pipeline pauses: nothing is paused; run `branchline install` to bring the branchline schema up to date', { code: 'BL-D005' });
        this.warnedMissing = true;
        this.update(new Map());
      },
      pollMs: this.options.pollMs ?? 5_000,
      ...(this.options.retry ? { retry: this.options.retry } : {}),
      logger,
      signal,
    });
  }

  /** The pause of this pipeline, or null (also before the table was first read). */
  paused(pipeline: string): Pause | null {
    return this.pauses.get(pipeline) ?? null;
  }

  /**
   * Runs `work` while `pipeline` is not paused, until `signal` aborts or
   * the work ends on its own (e.g. halted): then it resolves as the work
   * did. The work's own signal is aborted when the pipeline is paused.
   */
  async gate(pipeline: string, signal: AbortSignal, work: (signal: AbortSignal) => Promise<void>, hooks: PauseHooks): Promise<void> {
    for (let started = false; ; started = true) {
      const pause = await this.untilResumed(pipeline, signal, hooks);
      if (signal.aborted) return;
      if (pause) hooks.log.info('pipeline resumed', { pausedBy: pause.pausedBy, pausedFor_s: Math.round((Date.now() - pause.pausedAt.getTime()) / 1000) });
      else if (started) hooks.log.info('pipeline resumed');
      const controller = new AbortController();
      const stop = () => controller.abort();
      signal.addEventListener('abort', stop, { once: true });
      let pausedBy: Pause | null = null;
      const off = this.onChange(() => {
        const p = this.paused(pipeline);
        if (!p || pausedBy) return;
        pausedBy = p;
        hooks.log.info('pipeline paused: stopping it', { pausedBy: p.pausedBy, reason: p.reason });
        controller.abort();
      });
      try {
        await work(controller.signal);
      } finally {
        off();
        signal.removeEventListener('abort', stop);
      }
      if (signal.aborted || !pausedBy) return;
    }
  }

  /**
   * Resolves once the table was read and `pipeline` is not paused (or
   * `signal` aborted), with the pause it waited out (null: none).
   */
  private untilResumed(pipeline: string, signal: AbortSignal, hooks: PauseHooks): Promise<Pause | null> {
    let waited: Pause | null = null;
    return new Promise<Pause | null>((resolve) => {
      const check = () => {
        if (!signal.aborted && !this.known) return;
        const p = this.paused(pipeline);
        if (!signal.aborted && p) {
          if (!waited) {
            waited = p;
            hooks.log.info('pipeline paused: it stays stopped until `branchline resume`', { pausedBy: p.pausedBy, pausedAt: p.pausedAt.toISOString(), reason: p.reason });
            hooks.onPaused?.(p);
          }
          return;
        }
        off();
        signal.removeEventListener('abort', check);
        resolve(waited);
      };
      const off = this.onChange(check);
      signal.addEventListener('abort', check, { once: true });
      check();
    });
  }

  private onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private update(pauses: Map<string, Pause>): void {
    const changed = !this.known || pauses.size !== this.pauses.size || [...pauses.keys()].some((k) => !this.pauses.has(k));
    this.pauses = pauses;
    this.known = true;
    if (changed) for (const fn of [...this.listeners]) fn();
  }
}
