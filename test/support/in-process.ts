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
  /** Runs after install, before the agent starts (e.g. initial loads of the stores). */
  readonly beforeAgent?: (world: World) => Promise<void>;
}

export interface InProcess {
  readonly server: TestServer;
  readonly world: World;
  /** The running agent (a new one after startAgent). */
  readonly agent: Agent;
  /** Stops the agent (as if its host went away) and waits until it has. */
  stopAgent(): Promise<void>;
  /** Starts a new agent; waits for its up pipelines (and down ones unless waitDown is false) to stream. */
  startAgent(opts?: { waitDown?: boolean }): Promise<void>;
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
  let controller = new AbortController();
  let world: World | undefined;
  let running: Promise<unknown> | undefined;
  let agent: Agent | undefined;
  const stopAgent = async () => {
    controller.abort();
    await running?.catch(() => undefined);
    running = undefined;
  };
  const dispose = async () => {
    await stopAgent();
    await world?.dispose();
    await rm(mappingsDir, { recursive: true, force: true });
    await server.dispose();
  };
  const startAgent = async (opts: { waitDown?: boolean } = {}) => {
    controller = new AbortController();
    // BRANCHLINE_TEST_LOG=1 shows the agent's log on stderr (to see why a test waits in vain).
    const logger = process.env['BRANCHLINE_TEST_LOG'] === '1' ? createLogger({ level: 'debug' }) : silentLogger();
    const a = new Agent({ config: await world!.config(), logger });
    agent = a;
    running = a.run(controller.signal);
    await eventually('every pipeline streaming', async () => options.stores.every((s) => a.snapshot().get(s)?.state === 'streaming'));
    const down = Object.values(options.mappings).some((text) => /^direction:\s*down\b/m.test(text));
    if (down && opts.waitDown !== false)
      await eventually('every down pipeline streaming', async () => options.stores.every((s) => a.downSnapshot().get(s)?.state === 'streaming'));
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
    await options.beforeAgent?.(world);
    await startAgent();
    const w = world;
    return {
      server,
      world: w,
      get agent() {
        return agent!;
      },
      stopAgent,
      startAgent,
      dispose,
    };
  } catch (e) {
    await dispose();
    throw e;
  }
}
