import { describeProblem, isBranchlineError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { sleepUnlessAborted } from '../core/sleep-unless-aborted.js';
import type { PgSink } from '../apply/pg-sink.js';

/**
 * Failures no retry can cure: the source lost what the pipeline needs
 * (a store's slot invalidated, BL-S003). Retrying would only repeat the
 * error while claiming to be on the way back, so the pipeline halts
 * instead (state `halted`, alerted) until a person applies the fix its
 * error names.
 */
const HALTING_CODES: ReadonlySet<string> = new Set(['BL-S003']);

export function haltsPipeline(e: unknown): boolean {
  return isBranchlineError(e) && HALTING_CODES.has(e.code);
}

/**
 * While halted: reports `halted` with the error at the target every
 * `intervalMs` (without the pipeline's lock, so the fix, an initial load,
 * can take it), and returns once the stored position is no longer the one
 * the pipeline halted at and no load is copying (the load finished: the
 * pipeline carries on from its position), or when `signal` aborts.
 */
export async function waitWhileHalted(a: {
  readonly error: unknown;
  readonly since: string | null;
  readonly sink: () => PgSink;
  readonly intervalMs: number;
  readonly logger: Logger;
  readonly signal: AbortSignal;
}): Promise<void> {
  const e = a.error;
  if (isBranchlineError(e))
    a.logger.error('pipeline halted: it cannot go on by itself; nothing more is applied until the fix below is done', {
      code: e.code,
      error: describeProblem(e.problem),
    });
  const report = isBranchlineError(e) ? { code: e.code, message: describeProblem(e.problem) } : null;
  while (!a.signal.aborted) {
    const seen = await a.sink().reportHalted(report).catch(() => null);
    if (seen && !seen.loading && seen.position !== a.since) {
      a.logger.info('the pipeline was given a new position (an initial load finished): resuming', { position: seen.position });
      return;
    }
    await sleepUnlessAborted(a.intervalMs, a.signal);
  }
}
