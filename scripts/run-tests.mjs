#!/usr/bin/env node
// The README's test command (`npm test`): type-checks and compiles everything
// (child-process agents in the tests run the bundled CLI, as in production),
// then runs the pure tests (*.test.ts), the PostgreSQL tests (*.pg.test.ts), and
// the up channel's PostgreSQL tests once more with every store on pg-trigger.
// `--faults` (`npm run test:faults`, which .ci/run runs after `npm test`) runs
// the fault suite instead: test/faults-*.pg.test.ts and memory.pg.test.ts.
// Usage: node scripts/run-tests.mjs [--unit | --pg | --faults] [test files...]
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const only = args.find((a) => a === '--unit' || a === '--pg' || a === '--faults');
const files = args.filter((a) => !a.startsWith('--'));

// One initdb for the whole run: every embedded server of the tests starts from a copy of it
// (src/embedded/pg-server.ts), instead of running initdb itself. Removed when the run ends.
const template = mkdtempSync(path.join(os.tmpdir(), 'branchline-pg-template-'));
chmodSync(template, 0o755); // as root the servers run as `postgres`, which must reach the template
const cleanup = () => rmSync(template, { recursive: true, force: true });
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

function run(cmd, cmdArgs, env = {}) {
  const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: 'inherit', env: { ...process.env, BRANCHLINE_PG_TEMPLATE_DIR: path.join(template, 'pg'), ...env } });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const started = Date.now();
console.log('# compiling (tsc: type check + build into dist/)');
run(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json']);
console.log('# bundling the CLI (esbuild: dist/bundle/, what production runs)');
run(process.execPath, [path.join(root, 'scripts/bundle.mjs')]);

const all = readdirSync(path.join(root, 'test'))
  .filter((f) => f.endsWith('.test.ts'))
  .sort()
  .map((f) => path.join('test', f));
const unit = all.filter((f) => !f.endsWith('.pg.test.ts'));
// The fault suite (SIGKILLs, outages, network faults, a lost slot, 1,000,000-row transactions): minutes of its own.
const faults = all.filter((f) => /^test\/(faults-.+|memory)\.pg\.test\.ts$/.test(f.split(path.sep).join('/')));
const pg = all.filter((f) => f.endsWith('.pg.test.ts') && !faults.includes(f));
// The up channel's files again with every store captured by triggers (connector: pg-trigger):
// the same tests must pass whichever way a store's changes are read.
const UP_CHANNEL = ['pipeline', 'associations', 'batching', 'policies', 'retail-example', 'initial-load-up', 'down', 'faults', 'hostile-values'].map((f) => path.join('test', `${f}.pg.test.ts`));
const groups = files.length ? [['selected', files, {}]] : only === '--faults' ? [['fault suite', faults, {}]] : [
  ...(only !== '--pg' ? [['pure tests', unit, {}]] : []),
  ...(only !== '--unit' ? [['PostgreSQL tests', pg, {}]] : []),
  ...(only !== '--unit' ? [['PostgreSQL tests of the up channel, every store on connector pg-trigger', UP_CHANNEL, { BRANCHLINE_TEST_UP_CONNECTOR: 'pg-trigger' }]] : []),
];
for (const [name, list, env] of groups) {
  if (!list.length) continue;
  console.log(`# ${name}: ${list.length} files`);
  run(process.execPath, ['--import', 'tsx', '--test', '--test-force-exit', '--test-concurrency=1', '--test-reporter=spec', ...list], {
    BRANCHLINE_AGENT_DIST: '1',
    ...env,
  });
}
console.log(`# all tests passed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
