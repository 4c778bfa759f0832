import path from 'node:path';
import { defaultCacheDir, pullConfig } from '../config/central.js';
import { loadConfig, type Config } from '../config/load.js';
import { BranchlineError } from '../core/errors.js';

/**
 * The options that make `run`, `install` and `snapshot` work from HQ's
 * central configuration instead of a configuration file (see
 * docs/central-config.md): a store code, the store's URL and HQ's URL, each
 * a flag or an environment variable (so URLs with passwords need not be on
 * the command line, where `ps` shows them).
 */
export interface CentralArgs {
  readonly storeCode: string;
  readonly storeUrl: string;
  readonly hqUrl: string;
  readonly cacheDir: string;
}

/** What the command line gave (yargs' names). */
export interface CentralFlags {
  readonly store?: readonly string[] | string | undefined;
  readonly 'store-url'?: string | undefined;
  readonly 'hq-url'?: string | undefined;
  readonly 'cache-dir'?: string | undefined;
  /** True when --config was written on the command line (not its default). */
  readonly configGiven?: boolean;
}

export const CENTRAL_ENV = { store: 'BRANCHLINE_STORE', storeUrl: 'BRANCHLINE_STORE_URL', hqUrl: 'BRANCHLINE_HQ_URL' } as const;

function usage(message: string, hint: string): BranchlineError {
  return new BranchlineError({ code: 'BL-U003', message, hint });
}

const example = (command: string) => `\`branchline ${command} --store S001 --store-url "$STORE_URL" --hq-url "$HQ_URL"\``;

/**
 * The central options of `command`, or null when it runs from a
 * configuration file. Central when --store-url or --hq-url is given, or
 * BRANCHLINE_STORE_URL is set; then all three of store, store URL and HQ's
 * URL are needed, one store only, and no --config. `always`: the command
 * has no other way (`config pull`).
 */
export function centralArgs(command: string, flags: CentralFlags, env: NodeJS.ProcessEnv = process.env, always = false): CentralArgs | null {
  const storeUrl = flags['store-url'] ?? env[CENTRAL_ENV.storeUrl];
  const central = always || flags['store-url'] !== undefined || flags['hq-url'] !== undefined || Boolean(env[CENTRAL_ENV.storeUrl]);
  if (!central) {
    if (flags['cache-dir'] !== undefined)
      throw usage(
        `--cache-dir is for a store agent configured from HQ; \`branchline ${command}\` was given no --store-url or --hq-url.`,
        `Add --store-url and --hq-url (see docs/central-config.md), or leave --cache-dir out to use the configuration file.`,
      );
    return null;
  }
  if (flags.configGiven)
    throw usage(
      `\`branchline ${command}\` was given both --config and the options of a store configured from HQ (--store-url, --hq-url or ${CENTRAL_ENV.storeUrl}).`,
      `Use one: --config to run from a configuration file, or --store, --store-url and --hq-url to run the configuration HQ published (then drop --config).`,
    );
  const stores = flags.store === undefined ? [] : Array.isArray(flags.store) ? flags.store : [flags.store as string];
  const codes = stores.length ? stores : env[CENTRAL_ENV.store] ? [env[CENTRAL_ENV.store]!] : [];
  if (codes.length !== 1)
    throw usage(
      codes.length === 0
        ? `\`branchline ${command}\` configured from HQ needs the store's code.`
        : `\`branchline ${command}\` configured from HQ serves one store; it was given ${codes.length} (${codes.join(', ')}).`,
      `Name it with --store (or ${CENTRAL_ENV.store}), e.g. ${example(command)} (one store per agent or command).`,
    );
  if (!storeUrl)
    throw usage(
      `\`branchline ${command}\` configured from HQ needs the store's database URL.`,
      `Give it with --store-url or ${CENTRAL_ENV.storeUrl}, e.g. ${example(command)}.`,
    );
  const hqUrl = flags['hq-url'] ?? env[CENTRAL_ENV.hqUrl];
  if (!hqUrl)
    throw usage(
      `\`branchline ${command}\` configured from HQ needs HQ's database URL.`,
      `Give it with --hq-url or ${CENTRAL_ENV.hqUrl}, e.g. ${example(command)}.`,
    );
  return { storeCode: codes[0]!, storeUrl, hqUrl, cacheDir: path.resolve(flags['cache-dir'] ?? defaultCacheDir(env)) };
}

/**
 * The configuration a command works with: the file named by --config, or,
 * with the central options, HQ's newest version pulled and checked for that
 * one store (serving only it, with the URLs given), as `config pull` does.
 */
export async function commandConfig(command: string, flags: CentralFlags & { readonly config: string }): Promise<{ config: Config; central: CentralArgs | null; version: number | null }> {
  const central = centralArgs(command, flags);
  if (!central) return { config: await loadConfig(flags.config), central, version: null };
  const pulled = await pullConfig(central);
  return { config: pulled.config, central, version: pulled.version };
}
