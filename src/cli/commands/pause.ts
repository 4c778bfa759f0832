import type pg from 'pg';
import { loadConfig, selectStores, type StoreConfig } from '../../config/load.js';
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

/** The stores named (`--store`, repeatable), or undefined for every enabled one (`--all`); exactly one of them. */
function namedStores(args: ResumeArgs, verb: string): string[] | undefined {
  const named = args.store ?? [];
  if (named.length > 0 && args.all) throw usage('Give either --store or --all, not both.', `\`branchline ${verb} --store S01\` ${verb}s one store, \`--all\` every enabled store.`);
  if (named.length === 0 && !args.all) throw usage(`Say which stores to ${verb}: --store S01 (repeatable), or --all for every enabled store.`);
  return args.all ? undefined : named;
}

function pipelinesOf(stores: readonly string[], direction: PauseArgs['direction']): string[] {
  const dirs = direction === 'both' ? ['up', 'down'] : [direction];
  return stores.flatMap((code) => dirs.map((d) => `${d}:${code}`));
}

const codes = (stores: readonly StoreConfig[]): string[] => stores.map((s) => s.code);

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
  const pipelines = pipelinesOf(codes(selectStores(config, namedStores(args, 'pause'))), args.direction);
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

/** The store code of a pipeline name (`up:S01` -> `S01`). */
const storeOfPipeline = (pipeline: string): string => pipeline.slice(pipeline.indexOf(':') + 1);

/**
 * `resume`: lets paused pipelines run again. A store named with `--store`
 * that is no longer in the configuration but still has a pause at HQ (taken
 * out while paused) has its pause removed too, and is said to be so; one
 * with no pause is refused as an unknown store.
 */
export async function resumeCommand(args: ResumeArgs): Promise<number> {
  const config = await loadConfig(args.config);
  const named = namedStores(args, 'resume');
  const configured = new Set(codes(config.stores));
  const enabled = new Set(codes(selectStores(config, undefined)));
  const unknown = [...new Set((named ?? []).filter((c) => !configured.has(c)))];
  const pipelines = pipelinesOf(named ? named.filter((c) => configured.has(c)) : [...enabled], args.direction);
  const { resumed, leftOver } = await withHq(config, 'branchline-resume', async (db) => {
    await requirePausesTable(db, config.hq.url);
    const pauses = await readPauses(db);
    const pausedStores = new Set([...pauses.keys()].map(storeOfPipeline));
    const missing = unknown.filter((c) => !pausedStores.has(c));
    // Not in the configuration and not paused: an unknown store, as for any other command (selectStores throws BL-C005; nothing resumed).
    if (missing.length > 0) selectStores(config, missing);
    const done = await resumePipelines(db, [...pipelines, ...pipelinesOf(unknown, args.direction)]);
    // `--all` resumes the enabled stores; pauses of disabled stores and of stores outside the configuration stay, and are named.
    const outside = named ? [] : [...pauses.keys()].filter((p) => !enabled.has(storeOfPipeline(p))).sort();
    return { resumed: done, leftOver: outside };
  });
  const ours = resumed.filter((p) => configured.has(storeOfPipeline(p)));
  const theirs = resumed.filter((p) => !configured.has(storeOfPipeline(p)));
  if (ours.length) out(`resumed ${ours.join(', ')}: a running agent starts ${ours.length === 1 ? 'it' : 'them'} within seconds, from where ${ours.length === 1 ? 'it' : 'they'} stopped.\n`);
  if (theirs.length) out(`removed the pause of ${theirs.join(', ')} (not in ${config.file}: an agent whose configuration has the store starts it within seconds).\n`);
  const idle = pipelines.filter((p) => !resumed.includes(p));
  if (idle.length) out(`${idle.join(', ')} ${idle.length === 1 ? 'was' : 'were'} not paused.\n`);
  if (leftOver.length)
    out(
      `still paused, for stores disabled or not in ${config.file}: ${leftOver.join(', ')}; \`branchline resume --store ${storeOfPipeline(leftOver[0]!)}\` removes ${leftOver.length === 1 ? 'it' : 'such a pause'}.\n`,
    );
  return EXIT.ok;
}
