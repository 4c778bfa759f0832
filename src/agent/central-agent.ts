import { fetchNewestVersion, loadCachedConfig, openPulledVersion, watchConfig, type FetchedVersion, type PulledConfig } from '../config/central.js';
import type { Config } from '../config/load.js';
import { formatProblem, isBranchlineError, ProblemsError, type BranchlineError } from '../core/errors.js';
import { isUnreachableError } from '../db/connect.js';
import type { Logger } from '../core/logger.js';
import { Backoff } from '../pipeline/backoff.js';
import { pruneCache } from '../config/central-bundle.js';

/** What runCentralAgent runs for one configuration version (the real Agent, wired by the caller). */
export interface CentralAgentChild {
  /**
   * Optional checks of the new version made while the previous one still
   * runs (e.g. the mappings against the databases' tables). When it throws,
   * the previous version keeps running.
   */
  prepare?(signal: AbortSignal): Promise<void>;
  /** Runs until `signal` aborts. */
  run(signal: AbortSignal): Promise<void>;
}

export interface CentralAgentOptions {
  readonly storeCode: string;
  readonly storeUrl: string;
  readonly hqUrl: string;
  /** Where pulled versions are kept (see docs/central-config.md). */
  readonly cacheDir: string;
  readonly logger: Logger;
  /** Stops everything; runCentralAgent resolves once the current run has ended. */
  readonly signal: AbortSignal;
  readonly makeAgent: (config: Config) => CentralAgentChild;
  /** For the `${VAR}` references the store resolves (default process.env). */
  readonly env?: NodeJS.ProcessEnv;
  /** How often to look at HQ without a notification (ms; default 30 s). */
  readonly pollMs?: number;
  /** Back-off while HQ cannot be reached or a run fails (default 1 s doubling to 60 s). */
  readonly retry?: { readonly initialMs: number; readonly maxMs: number };
}

interface Running {
  readonly pulled: PulledConfig;
  readonly controller: AbortController;
  done: Promise<void>;
  state: 'running' | 'ended' | 'failed';
}

/**
 * A store agent configured centrally: runs the newest configuration version
 * HQ published for this store, and switches when HQ publishes another.
 *
 * - Start: pull the newest version. HQ unreachable: start from the newest
 *   cached version (pulled earlier, so published by HQ); no cache either:
 *   wait for HQ with back-off. Nothing published yet: wait for a push.
 * - A new version (LISTEN/NOTIFY, polling as the fallback): pull and check
 *   it, and the child's `prepare` if it has one, while the current version
 *   keeps running; only then stop the current run and start the new one. A
 *   version that does not check out is logged with its problems and the
 *   current one keeps running.
 * - A run that fails is started again with back-off (same version).
 */
export async function runCentralAgent(options: CentralAgentOptions): Promise<void> {
  const { logger, signal, storeCode } = options;
  const retry = options.retry ?? { initialMs: 1_000, maxMs: 60_000 };
  const pullBackoff = new Backoff(retry);
  const runBackoff = new Backoff(retry);
  const pullOptions = {
    hqUrl: options.hqUrl,
    storeCode,
    storeUrl: options.storeUrl,
    cacheDir: options.cacheDir,
    ...(options.env ? { env: options.env } : {}),
  };

  const self: { current: Running | null } = { current: null };
  let pullWanted = true;
  let pullAt = 0;
  let restartAt: number | null = null;
  let woken = false;
  let wake: (() => void) | null = null;
  const poke = () => {
    woken = true;
    wake?.();
  };
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      if (signal.aborted || woken) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        wake = null;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, Math.min(ms, 2 ** 31 - 1)));
      signal.addEventListener('abort', done);
      wake = done;
    });
  const running = () => (self.current?.state === 'running' ? self.current : null);
  const scheduleRetry = () => {
    const delay = pullBackoff.next();
    pullWanted = true;
    pullAt = Date.now() + delay;
    return delay;
  };

  const launch = (pulled: PulledConfig, child: CentralAgentChild) => {
    const controller = new AbortController();
    const run: Running = { pulled, controller, state: 'running', done: Promise.resolve() };
    run.done = (async () => {
      try {
        await child.run(controller.signal);
        if (!controller.signal.aborted) {
          run.state = 'ended';
          logger.info(`configuration version ${pulled.version} has nothing (more) to run; waiting for the next version`, { version: pulled.version });
        }
      } catch (e) {
        if (controller.signal.aborted) return;
        run.state = 'failed';
        const delay = runBackoff.next();
        restartAt = Date.now() + delay;
        logger.error(`the pipelines of configuration version ${pulled.version} stopped with an error; starting them again`, {
          version: pulled.version,
          ...describe(e),
          retryInMs: delay,
        });
      } finally {
        poke();
      }
    })();
    self.current = run;
    logger.info(`running configuration version ${pulled.version}`, { version: pulled.version, sha256: pulled.sha256, store: storeCode, dir: pulled.dir });
  };

  /**
   * Checks `pulled` (the child's prepare), then replaces what runs with it.
   * With nothing running yet, a version the child refuses falls back to the
   * newest older cached version it accepts (a restart must not leave the
   * store without the version it ran); `newest` is the one retried.
   */
  const switchTo = async (pulled: PulledConfig, why: 'start' | 'new version' | 'cache' | 'restart', newest: PulledConfig = pulled): Promise<void> => {
    let child: CentralAgentChild;
    try {
      child = options.makeAgent(pulled.config);
      if (child.prepare) await child.prepare(signal);
    } catch (e) {
      if (signal.aborted) return;
      const now = running();
      if (now) {
        logger.error(`configuration version ${pulled.version} cannot run here; still running version ${now.pulled.version}`, {
          version: pulled.version,
          running: now.pulled.version,
          ...describe(e),
        });
        return;
      }
      if (why !== 'restart') {
        const older = await loadCachedConfig({ ...pullOptions, logger, below: pulled.version });
        if (older) {
          logger.error(`configuration version ${pulled.version} cannot run here; starting from the cached configuration version ${older.version}`, {
            version: pulled.version,
            cached: older.version,
            ...describe(e),
          });
          return switchTo(older, 'cache', newest);
        }
      }
      // Nothing else to run: the newest version is the one to retry.
      const delay = runBackoff.next();
      restartAt = Date.now() + delay;
      self.current = { pulled: newest, controller: new AbortController(), state: 'failed', done: Promise.resolve() };
      const what = newest === pulled ? `configuration version ${pulled.version} cannot start` : `cached configuration version ${pulled.version} cannot start either`;
      logger.error(`${what}; trying version ${newest.version} again`, { version: newest.version, ...describe(e), retryInMs: delay });
      return;
    }
    if (signal.aborted) return;
    const previous = self.current;
    if (previous) {
      if (why === 'new version' && previous.state === 'running')
        logger.info(`configuration version ${pulled.version} published; restarting the pipelines`, { from: previous.pulled.version, to: pulled.version });
      previous.controller.abort();
      await previous.done;
    }
    if (why !== 'restart') runBackoff.reset();
    restartAt = null;
    launch(pulled, child);
    // Pruned only now: the version that runs stays cached whatever came after it.
    await pruneCache(options.cacheDir, pulled.version).catch((e: unknown) =>
      logger.warn('the configuration cache was not pruned', { cacheDir: options.cacheDir, error: (e as Error)?.message ?? String(e) }),
    );
  };

  /** The newest version cannot run here (it does not check out, or the child refused it): never run it; wait for the next one. */
  const refused = async (version: number | null, e: unknown) => {
    const which = version === null ? 'the newest configuration version' : `configuration version ${version}`;
    const now = self.current;
    if (now) {
      const keeping = now.state === 'running' ? 'still running' : 'keeping';
      logger.error(`${which} cannot run here; ${keeping} version ${now.pulled.version}`, { version, running: now.pulled.version, ...describe(e) });
      return;
    }
    logger.error(`${which} cannot run here`, { version, ...describe(e) });
    const cached = await loadCachedConfig({ ...pullOptions, logger });
    if (cached && cached.version !== version) {
      logger.warn(`starting from the cached configuration version ${cached.version}, the newest one that checks out`, { version: cached.version });
      await switchTo(cached, 'cache');
    }
  };

  /** HQ could not give a version: wait for it, from the cache if nothing runs yet. */
  const unavailable = async (e: unknown) => {
    const now = self.current;
    if (!isBranchlineError(e)) {
      const delay = scheduleRetry();
      logger.error('unexpected error while fetching the configuration from HQ', { error: (e as Error)?.stack ?? String(e), retryInMs: delay });
      return;
    }
    if (e.code === 'BL-C010') {
      if (now) logger.warn(`HQ has no published configuration any more; keeping version ${now.pulled.version}`, describe(e));
      else {
        const delay = scheduleRetry();
        logger.warn('HQ has no published configuration yet; waiting for `branchline config push` at HQ', { ...describe(e), retryInMs: delay });
      }
      return;
    }
    if (!isUnreachableError(e)) return refused(null, e);
    const delay = scheduleRetry();
    if (now) {
      logger.warn(`cannot fetch the configuration from HQ; keeping version ${now.pulled.version}`, { ...describe(e), retryInMs: delay });
      return;
    }
    const cached = await loadCachedConfig({ ...pullOptions, logger });
    if (cached) {
      logger.warn(`cannot fetch the configuration from HQ; starting from the cached configuration version ${cached.version}`, { ...describe(e), version: cached.version });
      await switchTo(cached, 'cache');
    } else {
      logger.warn('cannot fetch the configuration from HQ and none is cached here yet; waiting for HQ', { ...describe(e), cacheDir: options.cacheDir, retryInMs: delay });
    }
  };

  /** Fetches the newest version and, when it is not the one running, checks it and switches to it. */
  const attempt = async () => {
    let fetched: FetchedVersion;
    try {
      fetched = await fetchNewestVersion(pullOptions);
      pullBackoff.reset();
    } catch (e) {
      if (!signal.aborted) await unavailable(e);
      return;
    }
    const now = self.current;
    if (now && now.pulled.version === fetched.version && now.pulled.sha256 === fetched.sha256) return;
    let pulled: PulledConfig;
    try {
      pulled = await openPulledVersion(fetched, pullOptions, { prune: false });
    } catch (e) {
      if (signal.aborted) return;
      if (!isBranchlineError(e)) {
        const delay = scheduleRetry();
        logger.error(`unexpected error while checking configuration version ${fetched.version}`, { error: (e as Error)?.stack ?? String(e), retryInMs: delay });
        return;
      }
      await refused(fetched.version, e);
      return;
    }
    await switchTo(pulled, now ? 'new version' : 'start');
  };

  const watchController = new AbortController();
  const stopWatch = () => watchController.abort();
  signal.addEventListener('abort', stopWatch, { once: true });
  const watching = watchConfig({
    hqUrl: options.hqUrl,
    logger,
    signal: watchController.signal,
    ...(options.pollMs === undefined ? {} : { pollMs: options.pollMs }),
    retry,
    onVersion: (version, sha256) => {
      const now = self.current;
      if (now && now.pulled.version === version && now.pulled.sha256 === sha256) return;
      pullWanted = true;
      pullAt = 0;
      poke();
    },
  });

  try {
    while (!signal.aborted) {
      woken = false;
      const failed = self.current?.state === 'failed' ? self.current : null;
      if (failed && restartAt !== null && Date.now() >= restartAt) {
        restartAt = null;
        await switchTo(failed.pulled, 'restart');
        continue;
      }
      if (pullWanted && Date.now() >= pullAt) {
        pullWanted = false;
        await attempt();
        continue;
      }
      const next = Math.min(pullWanted ? pullAt : Infinity, failed && restartAt !== null ? restartAt : Infinity);
      await pause(next === Infinity ? 60_000 : next - Date.now());
    }
  } finally {
    stopWatch();
    signal.removeEventListener('abort', stopWatch);
    const last = self.current;
    if (last) {
      last.controller.abort();
      await last.done;
    }
    await watching;
  }
}

/** Log fields for an error: its code, its sentence and, for several problems, each with its position. */
function describe(e: unknown): Record<string, unknown> {
  if (e instanceof ProblemsError) return { code: e.code, error: e.message.split('\n')[0], problems: e.problems.map(formatProblem) };
  if (isBranchlineError(e)) return { code: (e as BranchlineError).code, error: e.message };
  return { error: (e as Error)?.stack ?? String(e) };
}
