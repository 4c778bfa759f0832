import type pg from 'pg';
import { loadConfig, selectStores, type Config, type StoreConfig } from '../../config/load.js';
import { BranchlineError } from '../../core/errors.js';
import { describeUrl } from '../../db/connect.js';
import { hasPausesTable, pausePipelines, readPauses, resumePipelines } from '../../pause/pauses.js';
import { EXIT } from '../output.js';
import { defaultActor, formatTime, out, usage, withHq } from './hq-commands.js';

/**
 * `pause` and `resume`: stop a store's replication without stopping the
 * agent (ALTER SUBSCRIPTION ... DISABLE / ENABLE, for branchline). They only
 * write HQ's table of paused pipelines, with a notification; every running
 * agent stops or starts the pipelines within moments (and within 5 s
 * should the notification be missed). Nothing is lost while paused: the
 * store's slot (or change table) keeps its changes, and HQ's change log
 * keeps the store's master data.
 */

export interface PauseArgs {
  config: string;
  store?: string[];
  all: boolean;
  direction: 'up' | 'down' | 'both';
  reason?: string;
  by?: string;
}

export type ResumeArgs = Omit<PauseArgs, 'reason' | 'by'>;

/** The stores named (`--store`, repeatable) or every enabled one (`--all`); exactly one of them. */
function storesOf(args: ResumeArgs, config: Config, verb: string): StoreConfig[] {
  const named = args.store ?? [];
  if (named.length > 0 && args.all) throw usage('Give either --store or --all, not both.', `\`branchline ${verb} --store S01\` ${verb}s one store, \`--all\` every enabled store.`);
  if (named.length === 0 && !args.all) throw usage(`Say which stores to ${verb}: --store S01 (repeatable), or --all for every enabled store.`);
  return selectStores(config, args.all ? undefined : named);
}

function pipelinesOf(stores: readonly StoreConfig[], direction: PauseArgs['direction']): string[] {
  const dirs = direction === 'both' ? ['up', 'down'] : [direction];
  return stores.flatMap((s) => dirs.map((d) => `${d}:${s.code}`));
}

async function requirePausesTable(db: pg.ClientBase, hqUrl: string): Promise<void> {
  if (!(await hasPausesTable(db)))
    throw new BranchlineError({
      code: 'BL-D005',
      message: `branchline's schema at the HQ database at ${describeUrl(hqUrl)} is older than this branchline: it has no table of paused pipelines.`,
      hint: 'Run `branchline install` once: it brings the branchline schema up to date and changes nothing else.',
    });
}

/** `pause`: keeps these pipelines stopped until `resume`. */
export async function pauseCommand(args: PauseArgs): Promise<number> {
  const config = await loadConfig(args.config);
  const pipelines = pipelinesOf(storesOf(args, config, 'pause'), args.direction);
  const reason = args.reason?.trim() || null;
  const { paused, already } = await withHq(config, 'branchline-pause', async (db) => {
    await requirePausesTable(db, config.hq.url);
    const done = await pausePipelines(db, pipelines, args.by ?? defaultActor(), reason);
    const all = await readPauses(db);
    return { paused: done, already: pipelines.filter((p) => !done.includes(p)).flatMap((p) => all.get(p) ?? []) };
  });
  if (paused.length)
    out(
      `paused ${paused.join(', ')}: a running agent stops ${paused.length === 1 ? 'it' : 'them'} within seconds, the open batch rolled back.\n` +
        (paused.some((p) => p.startsWith('up:'))
          ? 'While paused, a store keeps its changes for HQ (slot or change table): watch WAL KEPT in `branchline status`.\n'
          : '') +
        `\`branchline resume\` with the same stores starts ${paused.length === 1 ? 'it' : 'them'} again from where ${paused.length === 1 ? 'it' : 'they'} stopped.\n`,
    );
  for (const p of already) out(`${p.pipeline} was already paused, since ${formatTime(p.pausedAt)} by ${p.pausedBy}${p.reason ? `: ${p.reason}` : ''}.\n`);
  return EXIT.ok;
}

/** `resume`: lets paused pipelines run again. */
export async function resumeCommand(args: ResumeArgs): Promise<number> {
  const config = await loadConfig(args.config);
  const pipelines = pipelinesOf(storesOf(args, config, 'resume'), args.direction);
  const resumed = await withHq(config, 'branchline-resume', async (db) => {
    await requirePausesTable(db, config.hq.url);
    return resumePipelines(db, pipelines);
  });
  if (resumed.length) out(`resumed ${resumed.join(', ')}: a running agent starts ${resumed.length === 1 ? 'it' : 'them'} within seconds, from where ${resumed.length === 1 ? 'it' : 'they'} stopped.\n`);
  const idle = pipelines.filter((p) => !resumed.includes(p));
  if (idle.length) out(`${idle.join(', ')} ${idle.length === 1 ? 'was' : 'were'} not paused.\n`);
  return EXIT.ok;
}
