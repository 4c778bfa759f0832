#!/usr/bin/env node
// The README's test command (`npm test`): type-checks and compiles everything
// (child-process agents in the tests run the bundled CLI, as in production),
// then runs every test file: the pure tests (*.test.ts), the PostgreSQL tests
// (*.pg.test.ts), the up channel's PostgreSQL tests once more with every store
// on pg-trigger, and the fault suite (test/faults-*.pg.test.ts and
// memory.pg.test.ts).
//
// Each file runs in a process of its own (node --test), a few at a time
// (--jobs N or BRANCHLINE_TEST_JOBS, default 3: most of a PostgreSQL test's
// time is spent waiting on servers, not on the CPU), the slowest first. A
// file's output is printed whole when it ends, so files never interleave.
//
// Usage: node scripts/run-tests.mjs [--unit | --pg | --faults] [--jobs N] [test files...]
//   --unit     the pure tests only     --pg       the PostgreSQL tests without the fault suite
//   --faults   the fault suite only    files      just these (BRANCHLINE_TEST_UP_CONNECTOR from the environment)
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const only = args.find((a) => a === '--unit' || a === '--pg' || a === '--faults');
const jobsAt = args.indexOf('--jobs');
const jobsArg = jobsAt >= 0 ? args[jobsAt + 1] : process.env.BRANCHLINE_TEST_JOBS;
const JOBS = jobsArg === undefined ? 3 : Number(jobsArg);
if (!Number.isInteger(JOBS) || JOBS < 1) {
  console.error(`--jobs (or BRANCHLINE_TEST_JOBS) must be a whole number of at least 1, not "${jobsArg}".`);
  process.exit(2);
}
const files = args.filter((a, i) => !a.startsWith('--') && !(jobsAt >= 0 && i === jobsAt + 1));
// A file that takes longer than this is stopped and counted as failed (its own tests have shorter timeouts).
const FILE_LIMIT_MS = 20 * 60_000;

// One initdb for the whole run: every embedded server of the tests starts from a copy of it
// (src/embedded/pg-server.ts), instead of running initdb itself. Removed when the run ends.
const template = mkdtempSync(path.join(os.tmpdir(), 'branchline-pg-template-'));
chmodSync(template, 0o755); // as root the servers run as `postgres`, which must reach the template
const children = new Set();
const cleanup = () => {
  for (const c of children) c.kill('SIGTERM');
  rmSync(template, { recursive: true, force: true });
};
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
const baseEnv = { ...process.env, BRANCHLINE_PG_TEMPLATE_DIR: path.join(template, 'pg') };

function runOrExit(cmd, cmdArgs) {
  const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: 'inherit', env: baseEnv });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const started = Date.now();
console.log('# compiling (tsc: type check + build into dist/)');
runOrExit(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json']);
console.log('# bundling the CLI (esbuild: dist/bundle/, what production runs)');
runOrExit(process.execPath, [path.join(root, 'scripts/bundle.mjs')]);

const all = readdirSync(path.join(root, 'test'))
  .filter((f) => f.endsWith('.test.ts'))
  .sort()
  .map((f) => `test/${f}`);
const unit = all.filter((f) => !f.endsWith('.pg.test.ts'));
// The fault suite (SIGKILLs, outages, network faults, a lost slot, 1,000,000-row transactions): minutes of its own.
const faults = all.filter((f) => /^test\/(faults-.+|memory)\.pg\.test\.ts$/.test(f));
const pg = all.filter((f) => f.endsWith('.pg.test.ts') && !faults.includes(f));
// The up channel's files again with every store captured by triggers (connector: pg-trigger):
// the same tests must pass whichever way a store's changes are read.
const UP_CHANNEL = ['pipeline', 'associations', 'batching', 'policies', 'retail-example', 'initial-load-up', 'down', 'faults', 'hostile-values', 'pause'].map((f) => `test/${f}.pg.test.ts`);
const TRIGGER = { BRANCHLINE_TEST_UP_CONNECTOR: 'pg-trigger' };

/** @type {{ file: string, env: Record<string, string>, label: string }[]} */
const jobs = [];
const add = (list, env = {}, label = '') => {
  for (const file of list) jobs.push({ file, env, label });
};
if (files.length) add(files);
else if (only === '--faults') add(faults);
else {
  if (only !== '--pg') add(unit);
  if (only !== '--unit') {
    add(pg);
    add(UP_CHANNEL, TRIGGER, 'stores on pg-trigger');
  }
  if (!only) add(faults);
}

// The slowest files first, so that the last minutes are not one long file running alone. Wall seconds
// measured in a run with 3 jobs on the 2-core build machine (docs/testing.md); a file not listed counts
// as quick. Order only: a wrong figure costs minutes, never a result.
const SECONDS = {
  'test/memory.pg.test.ts': 314,
  'test/faults-kills.pg.test.ts': 171,
  'test/faults-outages.pg.test.ts': 144,
  'test/faults.pg.test.ts': 143,
  'test/faults.pg.test.ts stores on pg-trigger': 132,
  'test/faults-network.pg.test.ts': 112,
  'test/types.pg.test.ts': 60,
  'test/initial-load.pg.test.ts': 59,
  'test/cli.pg.test.ts': 57,
  'test/leases.pg.test.ts': 56,
  'test/initial-load-up.pg.test.ts': 44,
  'test/queries.pg.test.ts': 40,
  'test/associations-cli.pg.test.ts': 31,
  'test/initial-load-up.pg.test.ts stores on pg-trigger': 30,
  'test/source-contract.pg.test.ts': 28,
  'test/central-run.pg.test.ts': 28,
  'test/pipeline.pg.test.ts stores on pg-trigger': 27,
  'test/pipeline.pg.test.ts': 26,
  'test/doctor.pg.test.ts': 25,
  'test/clock-skew.pg.test.ts': 25,
  'test/reconcile.pg.test.ts': 25,
  'test/mapping-fuzz.test.ts': 21,
};
const key = (j) => (j.label ? `${j.file} ${j.label}` : j.file);
const seconds = (j) => SECONDS[key(j)] ?? (j.file.endsWith('.pg.test.ts') ? 15 : 2);
jobs.sort((a, b) => seconds(b) - seconds(a));

const what = files.length ? 'selected files' : only === '--faults' ? 'the fault suite' : only === '--unit' ? 'pure tests' : only === '--pg' ? 'PostgreSQL tests' : 'every test';
console.log(`# ${what}: ${jobs.length} files, ${Math.min(JOBS, jobs.length)} at a time, slowest first`);

/** Runs one file; resolves with its exit status, output and wall time. */
function runFile(job) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-force-exit', '--test-reporter=spec', job.file], {
      cwd: root,
      env: { ...baseEnv, BRANCHLINE_AGENT_DIST: '1', ...job.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    const out = [];
    child.stdout.on('data', (b) => out.push(b));
    child.stderr.on('data', (b) => out.push(b));
    let timedOut = false;
    const limit = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
    }, FILE_LIMIT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(limit);
      children.delete(child);
      let text = Buffer.concat(out).toString('utf8');
      if (timedOut) text += `\n# ${job.file} was stopped after ${FILE_LIMIT_MS / 60_000} minutes: a test hangs.\n`;
      resolve({ job, ok: code === 0 && !timedOut, status: signal ?? code, text, ms: Date.now() - t0 });
    });
  });
}

const results = [];
let next = 0;
async function worker() {
  while (next < jobs.length) {
    const job = jobs[next++];
    const r = await runFile(job);
    results.push(r);
    const head = `# [${results.length}/${jobs.length}] ${key(job)}: ${r.ok ? 'passed' : `FAILED (exit ${r.status})`} in ${(r.ms / 1000).toFixed(0)} s`;
    process.stdout.write(`${head}\n${r.text}${r.text.endsWith('\n') ? '' : '\n'}`);
  }
}
await Promise.all(Array.from({ length: Math.min(JOBS, jobs.length) }, worker));

const wall = (Date.now() - started) / 1000;
const slowest = [...results].sort((a, b) => b.ms - a.ms).slice(0, 12);
console.log(`# slowest files: ${slowest.map((r) => `${key(r.job)} ${(r.ms / 1000).toFixed(0)} s`).join(', ')}`);
const failed = results.filter((r) => !r.ok);
if (failed.length) {
  console.log(`# ${failed.length} of ${results.length} files FAILED (their output is above): ${failed.map((r) => key(r.job)).join(', ')}`);
  process.exit(1);
}
console.log(`# all ${results.length} files passed in ${wall.toFixed(0)} s`);
