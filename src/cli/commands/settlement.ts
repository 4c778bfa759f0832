import { readFile } from 'node:fs/promises';
import { loadConfig } from '../../config/load.js';
import { BranchlineError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { summarize } from '../../settlement/route.js';
import { SettlementService } from '../../settlement/service.js';
import type { SettlementAnswer } from '../../settlement/answer.js';
import { table } from '../output.js';
import type { GlobalArgs } from './basic.js';
import { defaultActor, out } from './hq-commands.js';

/**
 * `settlement-check`: before settling, ask the store a record came from
 * (or, with --at hq, ask HQ) for its state. The exit code is the answer
 * (docs/cli.md): 0 released, 5 deleted, 6 settled, 7 amount differs,
 * 8 unavailable; several checks: 0 when all are released, else 9.
 */
export interface SettlementArgs extends GlobalArgs {
  store?: string;
  ref?: string[];
  amount?: string[];
  kind?: string;
  at: 'store' | 'hq';
  file?: string;
  json: boolean;
  by?: string;
}

export const SETTLEMENT_EXIT = { released: 0, deleted: 5, settled: 6, amount_differs: 7, unavailable: 8, mixed: 9 } as const;

export async function settlementCommand(args: SettlementArgs): Promise<number> {
  const config = await loadConfig(args.config);
  const raw = await requestsOf(args);
  const logger = createLogger({ level: args['log-level'] ?? 'warn' });
  const service = new SettlementService({ config, logger });
  let answers: SettlementAnswer[];
  try {
    answers = await service.check(`cli:${args.by ?? defaultActor()}`, raw, args.at);
  } finally {
    await service.close();
  }
  if (args.json) out(`${JSON.stringify({ checks: answers, summary: summarize(answers) }, null, 2)}\n`);
  else
    out(
      table(
        ['store', 'kind', 'ref', 'amount', 'answer', 'there', 'why'],
        answers.map((a) => [a.store, a.kind, a.ref, a.amount, a.status === 'unavailable' ? `unavailable (${a.reason})` : a.status, a.origin_amount ?? '-', a.detail]),
      ),
    );
  if (answers.length === 1) return SETTLEMENT_EXIT[answers[0]!.status];
  return answers.every((a) => a.status === 'released') ? 0 : SETTLEMENT_EXIT.mixed;
}

/** --store/--ref/--amount (pairs of --ref and --amount), or a JSON file of checks. */
async function requestsOf(args: SettlementArgs): Promise<unknown[]> {
  const usage = (message: string) =>
    new BranchlineError({
      code: 'BL-U001',
      message,
      hint: 'Write e.g. branchline settlement-check --store S001 --ref 42 --amount 129.90 (repeat --ref and --amount for several), or --file checks.json.',
    });
  if (args.file) {
    if (args.ref?.length || args.amount?.length) throw usage('--file cannot go with --ref or --amount.');
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(args.file, 'utf8'));
    } catch (e) {
      throw usage(`cannot read ${args.file} as JSON (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}).`);
    }
    const list = Array.isArray(parsed) ? parsed : (parsed as { checks?: unknown })?.checks;
    if (!Array.isArray(list)) throw usage(`${args.file} holds neither a list of checks nor {"checks": [...]}.`);
    return list.map((c) => (typeof c === 'object' && c !== null && !Array.isArray(c) ? { store: args.store, kind: args.kind, ...c } : c));
  }
  const refs = args.ref ?? [];
  const amounts = args.amount ?? [];
  if (refs.length === 0) throw usage('--ref is missing.');
  if (amounts.length !== refs.length) throw usage(`${refs.length} --ref but ${amounts.length} --amount: give one amount per reference, in the same order.`);
  if (!args.store) throw usage('--store is missing: name the store the record came from (or, with --at hq, the store asking).');
  return refs.map((ref, i) => ({ store: args.store, ...(args.kind ? { kind: args.kind } : {}), ref: String(ref), amount: String(amounts[i]) }));
}
