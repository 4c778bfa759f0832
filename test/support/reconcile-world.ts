import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { silentLogger } from '../../src/core/logger.js';
import { runInitialLoad } from '../../src/load/initial-load.js';
import { runInitialLoadUp } from '../../src/load/initial-load-up.js';
import type { ReconcileResult, TableReconciliation } from '../../src/reconcile/reconcile.js';
import { startTestServer, type TestServer } from './pg.js';
import { createWorld, type World } from './world.js';

export interface ReconcileWorld {
  readonly server: TestServer;
  readonly world: World;
  dispose(): Promise<void>;
}

/**
 * One store S1 and HQ on one embedded server, the given mapping files in a
 * folder of their own, `before` run (associations, ...), then both initial
 * loads through the normal path: what reconcile must find equal.
 */
export async function reconcileWorld(options: {
  name: string;
  hqSql: string;
  storeSql: string;
  mappings: Readonly<Record<string, string>>;
  before?: (world: World) => Promise<void>;
}): Promise<ReconcileWorld> {
  const server = await startTestServer(options.name);
  const mappingsDir = await mkdtemp(path.join(os.tmpdir(), 'branchline-maps-'));
  await chmod(mappingsDir, 0o755);
  for (const [name, text] of Object.entries(options.mappings)) await writeFile(path.join(mappingsDir, name), text);
  const world = await createWorld({ hqServer: server, storeServer: server, stores: ['S1'], hqSql: options.hqSql, storeSql: options.storeSql, mappingsDir, setup: false });
  await options.before?.(world);
  const config = await world.config();
  await runInitialLoadUp({ config, store: config.stores[0]!, logger: silentLogger() });
  await runInitialLoad({ config, store: config.stores[0]!, logger: silentLogger() });
  return {
    server,
    world,
    async dispose() {
      await world.dispose();
      await rm(mappingsDir, { recursive: true, force: true });
      await server.dispose();
    },
  };
}

/** The result of the mapping that writes `target`. */
export function byTarget(r: ReconcileResult, target: string): TableReconciliation {
  const t = r.tables.find((x) => x.target === target);
  assert.ok(t, `no result for ${target}: ${r.tables.map((x) => x.target).join(', ')}`);
  return t;
}
