import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BranchlineError, isBranchlineError, ProblemsError, type Problem } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { describeUrl } from '../db/connect.js';
import { loadMappingDir } from '../mapping/load.js';
import { sortProblems } from '../mapping/problems.js';
import {
  bundleSha256,
  CACHED_CONFIG_FILE,
  cachedVersions,
  isSafeBundlePath,
  pruneCache,
  readFolder,
  writeCachedVersion,
  type Bundle,
} from './central-bundle.js';
import { CONFIG_CHANNEL, CONFIG_TABLE, newestVersion, withConfigTable } from './central-table.js';
import { envScalars, outside, placeholderFor, referenceEnv, resolveSetting, TextPositions, type EnvScalar } from './central-env.js';
import { parseConfig, readConfigText, type Config } from './load.js';
import { YamlDoc } from './yaml-doc.js';

export { watchConfig, type WatchConfigOptions } from './central-watch.js';
export { bundleSha256, type Bundle } from './central-bundle.js';
export { CONFIG_CHANNEL, CONFIG_TABLE } from './central-table.js';

/**
 * Central configuration (issue 4): HQ keeps every published configuration in
 * `branchline.config_versions`; a store agent started with only its store
 * code, its own database URL and HQ's URL pulls the newest one, checks it,
 * and runs it. See docs/central-config.md.
 */

const APPLICATION = 'branchline-config';

export interface PushConfigOptions {
  readonly hqUrl: string;
  readonly configFile: string;
  /** Who publishes, recorded with the version (e.g. user@host). */
  readonly publishedBy: string;
  readonly note?: string | null;
}

export interface PushResult {
  readonly version: number;
  readonly sha256: string;
  /** The newest version already had this content: nothing was stored. */
  readonly unchanged: boolean;
}

/** A configuration version HQ published, checked, as one store runs it. */
export interface PulledConfig {
  readonly version: number;
  readonly sha256: string;
  /** Serves `storeCode` only, with HQ's and the store's URLs as given to the agent. */
  readonly config: Config;
  /** The version's folder in the cache. */
  readonly dir: string;
}

export interface PullConfigOptions {
  readonly hqUrl: string;
  readonly storeCode: string;
  readonly storeUrl: string;
  readonly cacheDir: string;
  /** For the `${VAR}` references the store resolves itself (default process.env). */
  readonly env?: NodeJS.ProcessEnv;
}

export interface CachedConfigOptions extends PullConfigOptions {
  /** Told about cached versions that are skipped because they do not check out here. */
  readonly logger?: Logger;
  /** Only versions older than this one (a store agent falling back from a version that does not fit its tables). */
  readonly below?: number;
}

export interface ConfigVersionInfo {
  readonly version: number;
  readonly publishedAt: Date;
  readonly publishedBy: string | null;
  readonly sha256: string;
  readonly files: number;
  readonly note: string | null;
}

/** Where a store agent keeps the versions it pulled: $BRANCHLINE_CACHE_DIR, else ~/.cache/branchline/config. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env['BRANCHLINE_CACHE_DIR']) return env['BRANCHLINE_CACHE_DIR'];
  const base = env['XDG_CACHE_HOME'] || path.join(os.homedir(), '.cache');
  return path.join(base, 'branchline', 'config');
}

// ---------------------------------------------------------------- push

/**
 * Checks a configuration file and its mapping folder and publishes them at
 * HQ as a new version (with a NOTIFY in the same transaction), unless the
 * newest version has the same content. Nothing is stored when anything is
 * wrong: every problem is reported at once.
 */
export async function pushConfig(options: PushConfigOptions): Promise<PushResult> {
  const bundle = await bundleForPush(options.configFile);
  const sha256 = bundleSha256(bundle);
  return withConfigTable(options.hqUrl, APPLICATION, async (db) => {
    await db.query('BEGIN');
    try {
      // One publisher at a time, so "unchanged" is decided on the true newest version; readers are not blocked.
      await db.query(`LOCK TABLE ${CONFIG_TABLE} IN EXCLUSIVE MODE`);
      const newest = await newestVersion(db);
      if (newest && newest.sha256 === sha256) {
        await db.query('COMMIT');
        return { version: newest.version, sha256, unchanged: true };
      }
      const r = await db.query<{ version: string }>(
        `INSERT INTO ${CONFIG_TABLE} (published_by, sha256, config_text, files, note) VALUES ($1, $2, $3, $4::jsonb, $5) RETURNING version::text AS version`,
        [options.publishedBy, sha256, bundle.configText, JSON.stringify(bundle.files), options.note ?? null],
      );
      const version = Number(r.rows[0]!.version);
      await db.query('SELECT pg_notify($1, $2)', [CONFIG_CHANNEL, String(version)]);
      await db.query('COMMIT');
      return { version, sha256, unchanged: false };
    } catch (e) {
      await db.query('ROLLBACK').catch(() => undefined);
      throw e;
    }
  });
}

/**
 * The configuration file and its mapping folder, checked as HQ can check
 * them: the configuration with its `${VAR}` references replaced by
 * placeholders (central-env.ts: HQ does not know the stores' secrets, and
 * the result must not depend on who publishes), every mapping file's syntax
 * and schema. The checks against the databases' tables happen where the
 * version runs.
 */
async function bundleForPush(configFile: string): Promise<Bundle> {
  const text = await readConfigText(configFile, 'Pass --config <file> or set BRANCHLINE_CONFIG.');
  const summary = `The configuration ${configFile} cannot be published; nothing was stored.`;
  const parsed = YamlDoc.parse(configFile, text, 'BL-C002');
  if (!parsed.doc) throw new ProblemsError(summary, parsed.problems);
  const doc = parsed.doc;
  const problems: Problem[] = [];

  const mappings = centralMappingsSetting(doc, problems);
  for (const [i, store] of arrayOf(doc.toJS(), 'stores').entries()) {
    const code = (store as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && code.includes('${'))
      problems.push({
        code: 'BL-C012',
        message: 'a store code in a centrally published configuration must be written out, not taken from an environment variable.',
        hint: 'Each store agent finds its entry by its code: write the code itself, e.g. code: S001.',
        location: doc.location(['stores', i, 'code']),
      });
  }

  const scalars = envScalars(doc);
  const env = referenceEnv(scalars, {}, (s, ref, n) => (ref.hasDefault ? undefined : placeholderFor(s, n)));
  try {
    await parseConfig(configFile, text, env);
  } catch (e) {
    if (!(e instanceof ProblemsError)) throw e;
    // A problem that only the placeholder standing for a variable can cause is judged where the variable is set.
    const unknown = scalars.filter((s) => s.refs.some((r) => !r.hasDefault)).map((s) => s.range);
    problems.push(...outside(e.problems, unknown, new TextPositions(text)));
  }

  let files: Record<string, string> = {};
  if (mappings !== null) {
    const dir = path.resolve(path.dirname(path.resolve(configFile)), mappings);
    try {
      const loaded = await loadMappingDir(dir);
      problems.push(...loaded.problems);
      const folder = await readFolder(dir, new Set([path.resolve(configFile)]));
      files = folder.files;
      problems.push(...folder.problems);
    } catch (e) {
      // A missing folder: parseConfig said so already (BL-C006) unless a problem elsewhere stopped it first.
      if (!isBranchlineError(e) || e.code !== 'BL-C006') throw e;
      if (!problems.some((p) => p.code === 'BL-C006')) problems.push(e.problem);
    }
  }
  if (problems.length) throw new ProblemsError(summary, sortProblems(dedupe(problems)));
  return { configText: text, files };
}

/**
 * `mappings:` of a configuration published centrally: written out, and a
 * folder inside the configuration file's folder (the version carries it,
 * and every store lays it out the same way). Null (with a problem) if not.
 */
function centralMappingsSetting(doc: YamlDoc, problems: Problem[]): string | null {
  const value = (doc.toJS() as { mappings?: unknown } | null)?.mappings;
  if (typeof value !== 'string' || value === '') return null; // the schema reports it
  const where = doc.location(['mappings']);
  if (value.includes('${')) {
    problems.push({
      code: 'BL-C012',
      message: '`mappings:` in a centrally published configuration must be written out, not taken from an environment variable.',
      hint: 'Write the folder, relative to the configuration file, e.g. mappings: mappings.',
      location: where,
    });
    return null;
  }
  const rel = path.normalize(value);
  if (path.isAbsolute(value) || rel === '.' || rel === '..' || rel.startsWith(`..${path.sep}`)) {
    problems.push({
      code: 'BL-C012',
      message: `\`mappings: ${value}\` must name a folder inside the configuration file's folder to be published with it.`,
      hint: 'Put the mapping files in a folder next to the configuration file (e.g. mappings/) and write mappings: mappings.',
      location: where,
    });
    return null;
  }
  return rel;
}

function arrayOf(value: unknown, key: string): unknown[] {
  const v = (value as Record<string, unknown> | null)?.[key];
  return Array.isArray(v) ? v : [];
}

function dedupe(problems: readonly Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.location?.file}:${p.location?.line}:${p.location?.column}:${p.code}:${p.message}`;
    return seen.has(k) ? false : (seen.add(k), true);
  });
}

// ---------------------------------------------------------------- pull

/**
 * The newest version HQ published, cached (cacheDir/v<N>/) and checked as
 * `storeCode` runs it: fetchNewestVersion, then openPulledVersion. HQ
 * unreachable: BL-D001 (see loadCachedConfig); no version: BL-C010; the
 * store not in it: BL-C011; a damaged version: BL-C013; a version that does
 * not check out: its problems (it stays cached, but loadCachedConfig skips
 * it, so a store only ever starts from a version it could check).
 */
export async function pullConfig(options: PullConfigOptions): Promise<PulledConfig> {
  return openPulledVersion(await fetchNewestVersion(options), options);
}

/** A version fetched from HQ into the cache, not checked yet. */
export interface FetchedVersion {
  readonly version: number;
  readonly sha256: string;
  readonly dir: string;
}

/** Fetches the newest version HQ published into the cache (whole or not at all; nothing is written when it is already there). */
export async function fetchNewestVersion(options: { readonly hqUrl: string; readonly cacheDir: string }): Promise<FetchedVersion> {
  const row = await withConfigTable(options.hqUrl, APPLICATION, async (db) => {
    const r = await db.query<{ version: string; sha256: string; config_text: string; files: unknown; published_at: Date }>(
      `SELECT version::text AS version, sha256, config_text, files, published_at FROM ${CONFIG_TABLE} ORDER BY version DESC LIMIT 1`,
    );
    return r.rows[0] ?? null;
  });
  if (!row)
    throw new BranchlineError({
      code: 'BL-C010',
      message: `HQ has no published configuration (${CONFIG_TABLE} at ${describeUrl(options.hqUrl)} is empty).`,
      hint: 'Publish one at HQ with `branchline config push --config branchline.yml`; a waiting store agent picks it up within seconds.',
    });
  const version = Number(row.version);
  const bundle = checkedBundle(version, row.sha256, row.config_text, row.files);
  const dir = await writeCachedVersion(options.cacheDir, {
    version,
    sha256: row.sha256,
    publishedAt: row.published_at.toISOString(),
    mappings: cacheLayout(row.config_text),
    bundle,
  });
  return { version, sha256: row.sha256, dir };
}

/**
 * Checks a fetched version for one store (see openVersion); once it checks
 * out, the cache keeps it and the two versions before it. `prune: false`
 * leaves the cache as it is (a store agent prunes when a version starts
 * running, so that the version it runs is never removed).
 */
export async function openPulledVersion(fetched: FetchedVersion, options: PullConfigOptions, { prune = true }: { prune?: boolean } = {}): Promise<PulledConfig> {
  const pulled = await openVersion(fetched.dir, fetched.version, fetched.sha256, options);
  if (prune) await pruneCache(options.cacheDir, fetched.version);
  return pulled;
}

/**
 * The newest cached version that checks out for this store, or null: what
 * a store agent may start from while HQ cannot be reached. Every cached
 * version was pulled from HQ, so it runs only what HQ published.
 */
export async function loadCachedConfig(options: CachedConfigOptions): Promise<PulledConfig | null> {
  for (const cached of await cachedVersions(options.cacheDir)) {
    if (options.below !== undefined && cached.version >= options.below) continue;
    try {
      const text = await readFile(path.join(cached.dir, CACHED_CONFIG_FILE), 'utf8');
      const { files, problems } = await readFolder(path.join(cached.dir, cacheLayout(text)));
      if (problems.length || bundleSha256({ configText: text, files }) !== cached.sha256) throw damaged(cached.version, `the cached copy in ${cached.dir} was changed`);
      return await openVersion(cached.dir, cached.version, cached.sha256, options);
    } catch (e) {
      if (!isBranchlineError(e)) throw e;
      options.logger?.warn('cached configuration version skipped', { version: cached.version, code: e.code, error: e.message });
    }
  }
  return null;
}

/** The bundle of a row, refused (BL-C013) unless it is well formed and matches its sha256. */
function checkedBundle(version: number, sha256: string, configText: string, files: unknown): Bundle {
  if (typeof files !== 'object' || files === null || Array.isArray(files)) throw damaged(version, 'its files are not a map of file names to text');
  for (const [name, text] of Object.entries(files)) {
    if (!isSafeBundlePath(name)) throw damaged(version, `it holds a file named ${JSON.stringify(name)}, which is not a plain relative path`);
    if (typeof text !== 'string') throw damaged(version, `its file ${name} is not text`);
  }
  const bundle = { configText, files: files as Record<string, string> };
  if (bundleSha256(bundle) !== sha256) throw damaged(version, 'its content does not match its sha256');
  return bundle;
}

function damaged(version: number, why: string): BranchlineError {
  return new BranchlineError({
    code: 'BL-C013',
    message: `configuration version ${version} cannot be used: ${why}.`,
    hint: 'Versions are written only by `branchline config push`; publish the configuration again with it.',
  });
}

/** The cache sub-folder for the mapping files: the version's `mappings:` when it is a folder inside (openVersion checks the rest). */
function cacheLayout(configText: string): string {
  const parsed = YamlDoc.parse(CACHED_CONFIG_FILE, configText, 'BL-C002');
  const probe: Problem[] = [];
  return (parsed.doc && centralMappingsSetting(parsed.doc, probe)) || 'mappings';
}

/**
 * Parses and checks a cached version for one store and returns it serving
 * that store only, with the URLs the agent was given. Settings the store
 * does not use (HQ's URL, its own URL, the other stores) are checked with
 * placeholders where their variables are not set here.
 */
async function openVersion(dir: string, version: number, sha256: string, options: Omit<PullConfigOptions, 'cacheDir'>): Promise<PulledConfig> {
  const file = path.join(dir, CACHED_CONFIG_FILE);
  const text = await readFile(file, 'utf8');
  const summary = `Configuration version ${version} published at HQ cannot run at store ${options.storeCode}.`;
  const parsed = YamlDoc.parse(file, text, 'BL-C002');
  if (!parsed.doc) throw new ProblemsError(summary, parsed.problems);
  const doc = parsed.doc;
  const codes = arrayOf(doc.toJS(), 'stores').map((s) => (s as { code?: unknown } | null)?.code);
  const index = codes.indexOf(options.storeCode);
  if (index < 0)
    throw new BranchlineError({
      code: 'BL-C011',
      message: `store "${options.storeCode}" is not in configuration version ${version} published at HQ.`,
      hint: `Its stores: ${codes.filter((c) => typeof c === 'string').join(', ') || 'none'}. Start the agent with one of these codes, or add the store at HQ and run \`branchline config push\`.`,
    });

  const unused: (readonly [number, number])[] = [];
  const rangeOf = (p: readonly (string | number)[]) => {
    const r = doc.nodeAt(p)?.range;
    if (r) unused.push([r[0], r[1]]);
  };
  rangeOf(['hq', 'url']);
  rangeOf(['stores', index, 'url']);
  for (let i = 0; i < codes.length; i++) if (i !== index) rangeOf(['stores', i]);
  const isUnused = (s: EnvScalar) => unused.some(([from, to]) => s.range[0] >= from && s.range[0] < to);
  const base = options.env ?? process.env;
  const env = referenceEnv(envScalars(doc), base, (s, ref, n) =>
    isUnused(s) ? (ref.hasDefault ? undefined : placeholderFor(s, n)) : base[ref.name],
  );
  let config: Config;
  try {
    config = await parseConfig(file, text, env);
  } catch (e) {
    if (!(e instanceof ProblemsError)) throw e;
    const kept = outside(e.problems, unused, new TextPositions(text));
    throw new ProblemsError(summary, kept.length ? kept : e.problems);
  }
  const rel = path.relative(dir, config.mappingsDir);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel))
    throw new ProblemsError(summary, [
      {
        code: 'BL-C012',
        message: `\`mappings:\` points outside the published version (${config.mappingsDir}); a store runs only mapping files HQ published.`,
        hint: 'Publish the configuration with `branchline config push`, with its mapping folder inside the configuration file\'s folder.',
        location: doc.location(['mappings']),
      },
    ]);
  const mappings = await loadMappingDir(config.mappingsDir);
  if (mappings.problems.length) throw new ProblemsError(summary, mappings.problems);
  const store = config.stores.find((s) => s.code === options.storeCode)!;
  return {
    version,
    sha256,
    dir,
    // A read_url left out follows the URL given here, not the placeholder parsed in its place.
    config: {
      ...config,
      hq: { ...config.hq, url: options.hqUrl, readUrl: config.hq.readUrl === config.hq.url ? options.hqUrl : config.hq.readUrl },
      stores: [{ ...store, url: options.storeUrl, readUrl: store.readUrl === store.url ? options.storeUrl : store.readUrl }],
    },
  };
}

// ---------------------------------------------------------------- listing

/** The newest `limit` versions, newest first. */
export async function describeVersions(hqUrl: string, limit = 20): Promise<ConfigVersionInfo[]> {
  return withConfigTable(hqUrl, APPLICATION, async (db) => {
    const r = await db.query<{ version: string; published_at: Date; published_by: string | null; sha256: string; files: string; note: string | null }>(
      `SELECT version::text AS version, published_at, published_by, sha256,
              (SELECT count(*) FROM jsonb_object_keys(files))::text AS files, note
         FROM ${CONFIG_TABLE} ORDER BY version DESC LIMIT $1`,
      [limit],
    );
    return r.rows.map((x) => ({
      version: Number(x.version),
      publishedAt: x.published_at,
      publishedBy: x.published_by,
      sha256: x.sha256,
      files: Number(x.files),
      note: x.note,
    }));
  });
}

/** HQ's URL from a configuration file's `hq.url`, resolved with `env` (for commands run at HQ). */
export async function hqUrlOf(configFile: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const text = await readConfigText(configFile, 'Pass --hq-url, or --config <file> with the HQ URL in it.');
  const parsed = YamlDoc.parse(configFile, text, 'BL-C002');
  if (!parsed.doc) throw new ProblemsError(`The configuration file ${configFile} is not valid YAML.`, parsed.problems);
  const { value, problems } = resolveSetting(parsed.doc, ['hq', 'url'], env);
  if (problems.length) throw new ProblemsError(`The configuration file ${configFile} needs environment variables.`, problems);
  if (!value)
    throw new BranchlineError({
      code: 'BL-C003',
      message: `the configuration file ${configFile} has no hq.url.`,
      hint: 'Pass --hq-url, or write hq: url: in the configuration file.',
      location: parsed.doc.location(['hq']),
    });
  return value;
}
