import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readdirSync, statSync, type WriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  // src/bench/ from source, dist/src/bench/ from a build: the package root holds package.json and src/.
  for (let i = 0; i < 5; i++) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'src'))) return dir;
    dir = path.dirname(dir);
  }
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
}

export const ROOT = findRoot();
const DIST_CLI = path.join(ROOT, 'dist/bundle/main.js');
const SRC_CLI = path.join(ROOT, 'src/cli/main.ts');

export interface AgentCommand {
  /** Node arguments before `run ...`. */
  readonly args: readonly string[];
  readonly kind: 'dist' | 'build' | 'tsx';
  /** Why this one, for the report. */
  readonly note: string;
  /** Removes what was made for it (a temporary build). */
  dispose(): Promise<void>;
}

const nothing = async (): Promise<void> => undefined;

/**
 * How to start `branchline run`. `auto`: the compiled build in dist/ (starts
 * like production) when no source file is newer than its compiled file,
 * else a fresh build of the working tree into a temporary folder (a stale
 * dist/ would measure old code; tsx would add its compile time to every
 * start). `dist`, `build` and `tsx` force one of them.
 */
export async function agentCommand(mode: 'auto' | 'dist' | 'build' | 'tsx', say: (line: string) => void): Promise<AgentCommand> {
  if (mode === 'tsx') return { args: ['--import', 'tsx', SRC_CLI], kind: 'tsx', note: 'the sources through tsx (--agent tsx)', dispose: nothing };
  if (mode === 'dist') {
    if (!existsSync(DIST_CLI)) throw new Error(`--agent dist: ${DIST_CLI} does not exist; run \`npm run build\` first.`);
    return { args: [DIST_CLI], kind: 'dist', note: 'the bundle in dist/bundle (--agent dist)', dispose: nothing };
  }
  const stale = existsSync(DIST_CLI) ? staleSources() : ['dist/ (missing)'];
  if (mode === 'auto' && stale.length === 0)
    return { args: [DIST_CLI], kind: 'dist', note: 'the bundle in dist/bundle (up to date with the sources)', dispose: nothing };
  const why = mode === 'build' ? '--agent build' : `dist/bundle is older than ${stale.length} source file(s), e.g. ${stale[0]}`;
  say(`bundling the working tree for the agent (${why})`);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-bench-build-'));
  const dispose = () => rm(dir, { recursive: true, force: true });
  try {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts/bundle.mjs'), dir], { cwd: ROOT, encoding: 'utf8' });
    const cli = path.join(dir, 'main.js');
    if (r.status !== 0 || !existsSync(cli)) throw new Error(`bundling the agent failed:\n${r.stdout}${r.stderr}`);
    return { args: [cli], kind: 'build', note: `a fresh bundle of the working tree in a temporary folder (${why})`, dispose };
  } catch (e) {
    await dispose();
    throw e;
  }
}

/** Agent source files (src/ without the benchmark, connectors/, migrations/) newer than the bundle. */
function staleSources(): string[] {
  const bundled = statSync(DIST_CLI).mtimeMs;
  const stale: string[] = [];
  const walk = (rel: string) => {
    const abs = path.join(ROOT, rel);
    if (!existsSync(abs)) return;
    for (const entry of readdirSync(abs, { withFileTypes: true })) {
      const r = path.join(rel, entry.name);
      if (entry.isDirectory()) {
        if (r !== path.join('src', 'bench')) walk(r);
      } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
        if (statSync(path.join(ROOT, r)).mtimeMs > bundled) stale.push(r);
      }
    }
  };
  for (const dir of ['src', 'connectors', 'migrations']) walk(dir);
  return stale;
}

/**
 * `branchline run` as a child process, its JSON log in a file. Optionally
 * with a V8 CPU profile written when it exits.
 */
export class AgentProcess {
  private child: ChildProcess | null = null;
  private readonly log: WriteStream;

  constructor(
    private readonly command: AgentCommand,
    private readonly configFile: string,
    readonly logFile: string,
    private readonly cpuProf: { dir: string; name: string } | null,
  ) {
    this.log = createWriteStream(logFile, { flags: 'a' });
  }

  /** Spawns the agent; returns its pid. */
  start(): number {
    if (this.child) throw new Error('the agent is already running');
    const prof = this.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', this.cpuProf.dir, '--cpu-prof-name', this.cpuProf.name] : [];
    const child = spawn(process.execPath, [...prof, ...this.command.args, 'run', '--config', this.configFile, '--log-level', 'info'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    child.stdout!.pipe(this.log, { end: false });
    child.stderr!.pipe(this.log, { end: false });
    child.on('exit', () => {
      if (this.child === child) this.child = null;
    });
    this.child = child;
    if (child.pid === undefined) throw new Error('the agent process could not be started');
    return child.pid;
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** SIGTERM (the clean stop: the open batch rolls back), SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 20_000): Promise<void> {
    const c = this.child;
    if (!c) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(t);
    this.child = null;
  }

  /** SIGKILL, for failures and interrupts. */
  kill(): void {
    this.child?.kill('SIGKILL');
    this.child = null;
  }

  /** How many lines of the JSON log carry this message. */
  async logged(message: string): Promise<number> {
    const text = await readFile(this.logFile, 'utf8').catch(() => '');
    let n = 0;
    for (const line of text.split('\n')) {
      try {
        if ((JSON.parse(line) as { message?: string }).message === message) n++;
      } catch {
        // not a log entry (e.g. a warning from node)
      }
    }
    return n;
  }

  async logTail(lines = 20): Promise<string> {
    const text = await readFile(this.logFile, 'utf8').catch(() => '');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  }

  async dispose(): Promise<void> {
    this.kill();
    await new Promise((r) => this.log.end(r));
  }
}
