import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Problem } from '../core/errors.js';

/**
 * A configuration version as HQ keeps it: the configuration file's text and
 * every file of its mapping folder, and how it is laid out in a store's
 * cache folder:
 *
 *   <cacheDir>/v<version>/branchline.yml         the configuration, as published
 *   <cacheDir>/v<version>/<mappings>/<file>      the mapping folder's files
 *   <cacheDir>/v<version>/version.json           version, sha256, published at
 *
 * A version folder appears whole or not at all (written under a temporary
 * name, then renamed), so a folder there is always a version HQ published.
 */

export interface Bundle {
  readonly configText: string;
  /** Path relative to the mapping folder ('/'-separated) -> text. */
  readonly files: Readonly<Record<string, string>>;
}

export const CACHED_CONFIG_FILE = 'branchline.yml';
const MANIFEST_FILE = 'version.json';
const VERSION_DIR = /^v(\d+)$/;

/**
 * sha256 (hex) of a bundle: of the JSON text `{"config": text, "files":
 * {path: text, ...}}` with the paths in code-unit order. The same content
 * gives the same sum wherever it is computed.
 */
export function bundleSha256(bundle: Bundle): string {
  const files: Record<string, string> = {};
  for (const name of Object.keys(bundle.files).sort(byCodeUnit)) files[name] = bundle.files[name]!;
  return createHash('sha256').update(JSON.stringify({ config: bundle.configText, files }), 'utf8').digest('hex');
}

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Every regular file under `dir` (recursively; names starting with "." and
 * anything in `exclude` left out), as text. A file that is not UTF-8 text
 * cannot be published: it comes back as a BL-C012 problem.
 */
export async function readFolder(dir: string, exclude: ReadonlySet<string> = new Set()): Promise<{ files: Record<string, string>; problems: Problem[] }> {
  const files: Record<string, string> = {};
  const problems: Problem[] = [];
  const walk = async (sub: string): Promise<void> => {
    const entries = await readdir(path.join(dir, sub), { withFileTypes: true });
    entries.sort((a, b) => byCodeUnit(a.name, b.name));
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const rel = sub ? `${sub}/${e.name}` : e.name;
      const full = path.join(dir, rel);
      if (exclude.has(path.resolve(full))) continue;
      // A link is followed to a file, never to a folder (no loops).
      const kind = e.isSymbolicLink() ? await stat(full).catch(() => null) : e;
      if (kind?.isDirectory() && !e.isSymbolicLink()) await walk(rel);
      else if (kind?.isFile()) {
        const bytes = await readFile(full);
        let text: string | null;
        try {
          text = decoder.decode(bytes);
        } catch {
          text = null;
        }
        if (text === null || text.includes('\u0000'))
          problems.push({
            code: 'BL-C012',
            message: `${full} is not UTF-8 text, so it cannot be published with the mapping folder.`,
            hint: 'Keep only the mapping files (and their CSV or text companions) in the mapping folder; move other files elsewhere.',
            location: { file: full, line: 1, column: 1 },
          });
        else files[rel] = text;
      }
    }
  };
  await walk('');
  return { files, problems };
}

/**
 * A file path from a published bundle that is safe to write under a folder:
 * relative, '/'-separated, no empty, "." or ".." segment, nothing hidden.
 */
export function isSafeBundlePath(name: string): boolean {
  if (name === '' || name.startsWith('/') || name.includes('\\') || name.includes('\u0000')) return false;
  return name.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..' && !seg.startsWith('.'));
}

export interface CachedVersion {
  readonly version: number;
  readonly sha256: string;
  readonly publishedAt: string | null;
  readonly dir: string;
}

export function versionDir(cacheDir: string, version: number): string {
  return path.join(cacheDir, `v${version}`);
}

/**
 * Writes a version into the cache (whole or not at all) unless it is there
 * already; returns its folder. `mappings` is the configuration's
 * `mappings:` folder (relative, inside the version folder).
 */
export async function writeCachedVersion(
  cacheDir: string,
  v: { version: number; sha256: string; publishedAt: string | null; mappings: string; bundle: Bundle },
): Promise<string> {
  const final = versionDir(cacheDir, v.version);
  const existing = await readManifest(final);
  if (existing && existing.sha256 === v.sha256) return final;
  await mkdir(cacheDir, { recursive: true });
  const tmp = await mkdtemp(path.join(cacheDir, `.tmp-v${v.version}-`));
  try {
    await writeFile(path.join(tmp, CACHED_CONFIG_FILE), v.bundle.configText);
    const mappingsDir = path.join(tmp, v.mappings);
    await mkdir(mappingsDir, { recursive: true });
    for (const [name, text] of Object.entries(v.bundle.files)) {
      const file = path.join(mappingsDir, ...name.split('/'));
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, text);
    }
    await writeFile(path.join(tmp, MANIFEST_FILE), JSON.stringify({ version: v.version, sha256: v.sha256, publishedAt: v.publishedAt }, null, 2) + '\n');
    // A folder of that name with another content (HQ's table was re-created): replace it.
    if (existing) await rm(final, { recursive: true, force: true });
    try {
      await rename(tmp, final);
    } catch (e) {
      // Another process wrote the same version at the same moment: use theirs.
      const code = (e as NodeJS.ErrnoException).code;
      if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || !(await readManifest(final))) throw e;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return final;
}

async function readManifest(dir: string): Promise<{ version: number; sha256: string; publishedAt: string | null } | null> {
  try {
    const m = JSON.parse(await readFile(path.join(dir, MANIFEST_FILE), 'utf8')) as { version?: unknown; sha256?: unknown; publishedAt?: unknown };
    if (typeof m.version !== 'number' || typeof m.sha256 !== 'string') return null;
    return { version: m.version, sha256: m.sha256, publishedAt: typeof m.publishedAt === 'string' ? m.publishedAt : null };
  } catch {
    return null;
  }
}

/** The cached versions, newest first. */
export async function cachedVersions(cacheDir: string): Promise<CachedVersion[]> {
  let names: string[];
  try {
    names = await readdir(cacheDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const found: CachedVersion[] = [];
  for (const name of names) {
    const m = VERSION_DIR.exec(name);
    if (!m) continue;
    const dir = path.join(cacheDir, name);
    const manifest = await readManifest(dir);
    if (manifest && manifest.version === Number(m[1])) found.push({ version: manifest.version, sha256: manifest.sha256, publishedAt: manifest.publishedAt, dir });
  }
  return found.sort((a, b) => b.version - a.version);
}

/**
 * Keeps the `keep` newest cached versions (and `always`, e.g. the one a
 * store agent runs while newer ones do not fit), removes the rest
 * and temporary folders left by a process that died while writing (older
 * than an hour, so a concurrent writer's is never touched).
 */
export async function pruneCache(cacheDir: string, always: number, keep = 3): Promise<void> {
  const versions = await cachedVersions(cacheDir);
  for (const v of versions.slice(keep)) if (v.version !== always) await rm(v.dir, { recursive: true, force: true });
  for (const name of await readdir(cacheDir).catch(() => [] as string[])) {
    if (!name.startsWith('.tmp-v')) continue;
    const full = path.join(cacheDir, name);
    const s = await lstat(full).catch(() => null);
    if (s && Date.now() - s.mtimeMs > 3_600_000) await rm(full, { recursive: true, force: true });
  }
}
