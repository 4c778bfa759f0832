import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Agent } from '../../src/agent/agent.js';
import { createLogger, silentLogger } from '../../src/core/logger.js';
import { startTestServer, type TestServer } from './pg.js';
import { createWorld, eventually, type World } from './world.js';

export interface InProcessOptions {
  /** Name of the test server (its data directory). */
  readonly name: string;
  readonly stores: readonly string[];
  readonly hqSql: string;
  readonly storeSql: string;
  /** Mapping files by file name. */
  readonly mappings: Readonly<Record<string, string>>;
  readonly extraConfig?: string;
}

export interface InProcess {
  readonly server: TestServer;
  readonly world: World;
  readonly agent: Agent;
  dispose(): Promise<void>;
}

/**
 * One throwaway server holding HQ and the stores, a schema and mappings of the
 * test's own, and the agent running in this process until dispose(). Returns
 * once every pipeline is streaming.
 */
export async function startInProcess(options: InProcessOptions): Promise<InProcess> {
  const server = await startTestServer(options.name);
  const mappingsDir = await mkdtemp(path.join(os.tmpdir(), 'branchline-maps-'));
  const controller = new AbortController();
  let world: World | undefined;
  let running: Promise<unknown> | undefined;
  const dispose = async () => {
    controller.abort();
    await running?.catch(() => undefined);
    await world?.dispose();
    await rm(mappingsDir, { recursive: true, force: true });
    await server.dispose();
  };
  try {
    await chmod(mappingsDir, 0o755);
    for (const [file, text] of Object.entries(options.mappings)) await writeFile(path.join(mappingsDir, file), text);
    world = await createWorld({
      hqServer: server,
      storeServer: server,
      stores: options.stores,
      hqSql: options.hqSql,
      storeSql: options.storeSql,
      mappingsDir,
      ...(options.extraConfig === undefined ? {} : { extraConfig: options.extraConfig }),
    });
    // BRANCHLINE_TEST_LOG=1 shows the agent's log on stderr (to see why a test waits in vain).
    const logger = process.env['BRANCHLINE_TEST_LOG'] === '1' ? createLogger({ level: 'debug' }) : silentLogger();
    const agent = new Agent({ config: await world.config(), logger });
    running = agent.run(controller.signal);
    await eventually('every pipeline streaming', async () => options.stores.every((s) => agent.snapshot().get(s)?.state === 'streaming'));
    return { server, world, agent, dispose };
  } catch (e) {
    await dispose();
    throw e;
  }
}
