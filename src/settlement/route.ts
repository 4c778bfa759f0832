import { BranchlineError } from '../core/errors.js';
import type { Route } from '../http/route.js';
import { SETTLEMENT_ANSWERS } from '../metrics/metrics.js';
import type { SettlementAnswer } from './answer.js';
import type { CheckTarget, SettlementService } from './service.js';

/**
 * `POST /settlement-checks`: `{"at": "store" | "hq", "checks": [{store, kind?, ref, amount}, ...]}`
 * (or one check's fields at the top level). Answers `{"checks": [...], "summary": {released: n, ...}}`
 * in the order asked. See docs/settlement.md.
 */
export function settlementRoute(service: SettlementService): Route {
  return {
    method: 'POST',
    path: '/settlement-checks',
    async handle(req) {
      const body = req.body;
      if (typeof body !== 'object' || body === null || Array.isArray(body))
        throw malformed('the body is not a JSON object.');
      const b = body as Record<string, unknown>;
      const at = b['at'] ?? 'store';
      if (at !== 'store' && at !== 'hq') throw malformed('"at" must be "store" (ask the origin store) or "hq" (ask HQ).');
      let checks: unknown[];
      if ('checks' in b) {
        if (!Array.isArray(b['checks'])) throw malformed('"checks" is not a list.');
        const extra = Object.keys(b).filter((k) => k !== 'checks' && k !== 'at');
        if (extra.length) throw malformed(`unknown field${extra.length > 1 ? 's' : ''} ${extra.map((k) => JSON.stringify(k.slice(0, 40))).join(', ')} next to "checks".`);
        checks = b['checks'];
      } else {
        const { at: _, ...one } = b;
        checks = [one];
      }
      for (const [i, c] of checks.entries()) {
        if (typeof c !== 'object' || c === null || Array.isArray(c)) continue; // checkRequest says so
        const extra = Object.keys(c).filter((k) => !['store', 'kind', 'ref', 'amount'].includes(k));
        if (extra.length) throw malformed(`${checks.length === 1 ? 'the check' : `checks[${i}]`}: unknown field ${JSON.stringify(extra[0]!.slice(0, 40))}.`);
      }
      const answers = await service.check(req.caller, checks, at as CheckTarget);
      return { status: 200, json: { checks: answers, summary: summarize(answers) } };
    },
  };
}

export function summarize(answers: readonly SettlementAnswer[]): Record<string, number> {
  const counts = Object.fromEntries(SETTLEMENT_ANSWERS.map((a) => [a, 0])) as Record<string, number>;
  for (const a of answers) counts[a.status]!++;
  return counts;
}

function malformed(message: string): BranchlineError {
  return new BranchlineError({
    code: 'BL-K002',
    message,
    hint: 'Send {"at": "store", "checks": [{"store": "S001", "kind": "receivable", "ref": "42", "amount": "129.90"}]} (docs/settlement.md).',
  });
}
