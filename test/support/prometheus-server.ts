import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { deadPort } from './dead-port.js';

export const PROMETHEUS_BIN = '/usr/bin/prometheus';

/** Fails with what to do when Debian's Prometheus is not installed (CI installs it: .ci/run). */
export function requirePrometheus(binary: string): void {
  if (!existsSync(binary))
    throw new Error(`${binary} is missing: install Debian's prometheus package (\`apt-get install -y prometheus\`, as .ci/run does); this test needs the real Prometheus server and promtool.`);
}

export interface PrometheusServer {
  readonly url: string;
  /** The value of the query's one series, null while it has none. */
  queryOne(expr: string): Promise<{ labels: Record<string, string>; value: number } | null>;
  /** Kills the server (by its pid) and removes its data directory. */
  stop(): Promise<void>;
}

/** A real Prometheus scraping `target` (host:port) every second with a bearer token, its data in a temporary directory. */
export async function startPrometheus(options: { target: string; token: string }): Promise<PrometheusServer> {
  requirePrometheus(PROMETHEUS_BIN);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-prometheus-'));
  await chmod(dir, 0o755);
  const port = await deadPort();
  const config = path.join(dir, 'prometheus.yml');
  await writeFile(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: branchline',
      '    authorization:',
      `      credentials: ${options.token}`,
      '    static_configs:',
      `      - targets: ['${options.target}']`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(
    PROMETHEUS_BIN,
    [`--config.file=${config}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr!.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-4_000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  };
  return {
    url,
    async queryOne(expr) {
      if (child.exitCode !== null) throw new Error(`prometheus exited (${child.exitCode}): ${log}`);
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`).catch(() => null);
      if (!res || res.status !== 200) return null;
      const body = (await res.json()) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
      const r = body.data.result;
      if (r.length !== 1) return null;
      return { labels: r[0]!.metric, value: Number(r[0]!.value[1]) };
    },
    stop,
  };
}
