import { describeVersions, hqUrlOf, pullConfig, pushConfig } from '../../config/central.js';
import { centralArgs } from '../central-args.js';
import { describeUrl } from '../../db/connect.js';
import { loadMappingDir } from '../../mapping/load.js';
import { EXIT, table } from '../output.js';
import type { GlobalArgs } from './basic.js';
import { defaultActor, formatTime, out, plural } from './hq-commands.js';

/**
 * `config push | versions | pull`: the configuration kept at HQ (see
 * docs/central-config.md). `push` and `versions` run at HQ; `pull` is what a
 * centrally configured store agent does at start, run by hand to see that
 * a store can reach HQ and run its newest version.
 */

export type ConfigPushArgs = GlobalArgs & { note?: string; by?: string; 'hq-url'?: string };
export type ConfigVersionsArgs = GlobalArgs & { limit: number; json: boolean; 'hq-url'?: string };
export type ConfigPullArgs = GlobalArgs & { store?: string; 'store-url'?: string; 'hq-url'?: string; 'cache-dir'?: string };

/** The first 12 hex digits of a sha256, as shown to people. */
function shortSha(sha256: string): string {
  return `${sha256.slice(0, 12)}…`;
}

/** `config push`: checks the configuration (--config) and its mapping folder and publishes them at HQ. */
export async function configPushCommand(args: ConfigPushArgs): Promise<number> {
  const hqUrl = args['hq-url'] ?? (await hqUrlOf(args.config));
  const r = await pushConfig({ hqUrl, configFile: args.config, publishedBy: args.by ?? defaultActor(), note: args.note ?? null });
  if (r.unchanged) {
    out(`configuration unchanged: version ${r.version} is current\n`);
    return EXIT.ok;
  }
  out(`published configuration version ${r.version} (sha256 ${shortSha(r.sha256)})\n`);
  out('Centrally configured store agents pick it up within seconds; `branchline config versions` lists the versions.\n');
  return EXIT.ok;
}

/** `config versions`: the versions published at HQ, newest first. */
export async function configVersionsCommand(args: ConfigVersionsArgs): Promise<number> {
  const hqUrl = args['hq-url'] ?? (await hqUrlOf(args.config));
  const versions = await describeVersions(hqUrl, args.limit);
  if (args.json) {
    out(JSON.stringify(versions, null, 2) + '\n');
    return EXIT.ok;
  }
  if (versions.length === 0) {
    out('No configuration published yet; publish one with `branchline config push`.\n');
    return EXIT.ok;
  }
  out(
    table(
      ['VERSION', 'PUBLISHED', 'BY', 'SHA256', 'FILES', 'NOTE'],
      versions.map((v, i) => [
        `${v.version}${i === 0 ? ' (current)' : ''}`,
        formatTime(v.publishedAt),
        v.publishedBy ?? '-',
        shortSha(v.sha256),
        String(v.files),
        v.note ?? '',
      ]),
    ),
  );
  return EXIT.ok;
}

/** `config pull`: fetches the newest version for one store into the cache and checks it, as the store agent would. */
export async function configPullCommand(args: ConfigPullArgs): Promise<number> {
  const pulled = await pullConfig(centralArgs('config pull', args, process.env, true)!);
  const mappings = await loadMappingDir(pulled.config.mappingsDir);
  const store = pulled.config.stores[0]!;
  out(`pulled configuration version ${pulled.version} (sha256 ${shortSha(pulled.sha256)}) into ${pulled.dir}\n`);
  out(
    `It checks out for store ${store.code}${store.enabled ? '' : ' (disabled in it: its pipelines would not run)'}: ` +
      `${plural(mappings.files.length, 'mapping file')}, the store at ${describeUrl(store.url)}, HQ at ${describeUrl(pulled.config.hq.url)}.\n`,
  );
  return EXIT.ok;
}
