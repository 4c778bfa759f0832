import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(ROOT, 'src/cli/main.ts');
const DIST_CLI = path.join(ROOT, 'dist/bundle/main.js');

/**
 * How to start the CLI: the bundled build when the test runner made one
 * (`npm test` does; starts in a fraction of a second, like production), else tsx.
 */
function cliCommand(): string[] {
  return process.env['BRANCHLINE_AGENT_DIST'] === '1' ? [DIST_CLI] : ['--import', 'tsx', CLI];
}

/** Runs the CLI to completion and returns its exit code and output. */
export async function runCli(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [...cliCommand(), ...args], { cwd: ROOT, env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, stdout, stderr };
}

/** Starts the CLI as a child process without waiting, so a test can SIGKILL it midway (e.g. an initial load). */
export function spawnCli(args: readonly string[]): ChildProcess {
  return spawn(process.execPath, [...cliCommand(), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * `branchline run` as a child process, so a test can SIGKILL it like a
 * power cut. Its JSON log goes to a file the test can read.
 */
export class AgentProcess {
  private child: ChildProcess | null = null;
  private log: WriteStream;
  starts = 0;

  /** `configFile` null: no --config (e.g. a store agent configured from HQ, whose options are in `extraArgs`). */
  constructor(private readonly configFile: string | null, readonly logFile: string, private readonly extraArgs: readonly string[] = []) {
    this.log = createWriteStream(logFile, { flags: 'a' });
  }

  start(): void {
    if (this.child) throw new Error('agent already running');
    this.starts++;
    const config = this.configFile === null ? [] : ['--config', this.configFile];
    const child = spawn(process.execPath, [...cliCommand(), 'run', ...config, '--log-level', 'debug', ...this.extraArgs], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.pipe(this.log, { end: false });
    child.stderr!.pipe(this.log, { end: false });
    child.on('exit', () => {
      if (this.child === child) this.child = null;
    });
    this.child = child;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== null;
  }

  /** SIGKILL: no chance to roll back, close or acknowledge anything. */
  async kill(): Promise<void> {
    const c = this.child;
    if (!c) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
    this.child = null;
  }

  /** SIGTERM and wait (the clean stop). */
  async stop(timeoutMs = 15_000): Promise<number | null> {
    const c = this.child;
    if (!c) return null;
    const exited = new Promise<number | null>((r) => c.once('exit', (code) => r(code)));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    const code = await exited;
    clearTimeout(t);
    this.child = null;
    return code;
  }

  async logText(): Promise<string> {
    return readFile(this.logFile, 'utf8').catch(() => '');
  }

  async dispose(): Promise<void> {
    await this.kill();
    await new Promise((r) => this.log.end(r));
  }
}

/** Any CLI command as a child process (e.g. `snapshot`), so a test can SIGKILL it midway; output collected. */
export function startCli(args: readonly string[]): { child: ChildProcess; output: () => { stdout: string; stderr: string }; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [...cliCommand(), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, output: () => ({ stdout, stderr }), exited };
}
