import { BranchlineError } from '../core/errors.js';

/**
 * Polls `read` every `everyMs` until it gives a value (not undefined), or
 * fails after `ms` with BL-U002 naming `what`: how the demo waits for the
 * agent to do something.
 */
export async function waitFor<T>(what: string, read: () => Promise<T | undefined>, options: { ms?: number; everyMs?: number } = {}): Promise<T> {
  const ms = options.ms ?? 30_000;
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (v !== undefined) return v;
    if (Date.now() > deadline)
      throw new BranchlineError({ code: 'BL-U002', message: `the demo waited ${ms / 1000} s for ${what}.`, hint: 'See the agent log named above.' });
    await new Promise((r) => setTimeout(r, options.everyMs ?? 200));
  }
}

/** Polls `check` every 20 ms until it holds; returns the milliseconds it took (a measured delay the demo prints). */
export async function timeUntil(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<number> {
  const started = Date.now();
  await waitFor(what, async () => ((await check()) ? true : undefined), { ms, everyMs: 20 });
  return Date.now() - started;
}
