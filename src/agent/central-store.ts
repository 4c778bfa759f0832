import type { Config } from '../config/load.js';
import type { Logger } from '../core/logger.js';
import { Agent } from './agent.js';
import { runCentralAgent, type CentralAgentChild, type CentralAgentOptions } from './central-agent.js';
import { install } from './install.js';

/** runCentralAgent's options less the agent it runs, which is the real one here. */
export type CentralStoreAgentOptions = Pick<CentralAgentOptions, 'storeCode' | 'storeUrl' | 'hqUrl' | 'cacheDir' | 'logger' | 'signal' | 'pollMs'>;

/**
 * `branchline run --store S --store-url URL --hq-url URL`: the real Agent
 * (up and down pipelines of one store) under runCentralAgent's restart
 * loop. For each version, while the previous one still runs, the Agent's
 * prepare checks the mappings against HQ's and the store's tables; once the
 * previous pipelines stopped, the store's side is brought up to date for
 * this version (as `branchline install` does: the publication lists exactly
 * its tables, the slot exists, the down channel's state is migrated; at HQ
 * only missing capture triggers are created), then its pipelines start.
 */
export function runCentralStoreAgent(options: CentralStoreAgentOptions): Promise<void> {
  return runCentralAgent({ ...options, makeAgent: (config) => storeAgent(config, options.logger) });
}

function storeAgent(config: Config, logger: Logger): CentralAgentChild {
  const stores = config.stores.filter((s) => s.enabled);
  // The chain's report is HQ's agent's to send, not every store's.
  const agent = new Agent({ config, logger, stores, reports: false });
  return {
    prepare: (signal) => agent.prepare(signal),
    run: async (signal) => {
      if (stores.length === 0) {
        logger.warn(`store ${config.stores[0]?.code} is disabled in this configuration version (enabled: false); its pipelines do not run`);
        return;
      }
      const reports = await install(config, stores, logger, { hqTriggers: 'missing' });
      for (const r of reports) logger.debug('store side ready for this configuration version', { database: r.database, actions: r.actions });
      if (signal.aborted) return;
      await agent.run(signal);
    },
  };
}
