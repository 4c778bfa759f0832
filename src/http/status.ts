import type { ErrorCode, Problem } from '../core/errors.js';

/**
 * The HTTP status a BranchlineError is answered with, one table for the
 * server, its tests and docs/http.md. The rule: a mistake of the caller is
 * 4xx (the request itself is wrong, 400; what its URL names is not here,
 * 404), a problem of this agent's configuration is 500 (the caller cannot fix
 * it, the message says what the operator must), a database the agent cannot
 * reach right now is 503 (try again later).
 */
const BY_CODE: Partial<Record<ErrorCode, number>> = {
  'BL-H001': 401,
  'BL-H002': 400,
  'BL-H003': 404,
  'BL-H004': 413,
  'BL-H005': 500,
  'BL-H006': 503,
  // A settlement check's body names a kind no mapping declares: the body is wrong, not the URL.
  'BL-K001': 400,
  'BL-K002': 400,
  // GET /stock/:product when no stock query is configured: what the URL names is not served here.
  'BL-Q001': 404,
  'BL-Q002': 500,
};

/** By family, for codes the table does not name. */
const BY_FAMILY: Readonly<Record<string, number>> = {
  'BL-D': 503,
};

export function statusFor(code: ErrorCode): number {
  return BY_CODE[code] ?? BY_FAMILY[code.slice(0, 4)] ?? 500;
}

/** The body of every error answer: `{"error": {"code", "message", "hint"}}` (and the request id of a 500). */
export interface ErrorBody {
  readonly error: { readonly code: ErrorCode | null; readonly message: string; readonly hint: string | null; readonly requestId?: string };
}

export function errorBody(problem: Pick<Problem, 'code' | 'message' | 'hint'>): ErrorBody {
  return { error: { code: problem.code, message: problem.message, hint: problem.hint ?? null } };
}

/** What a caller gets for a bug (anything thrown that is not a BranchlineError): no message, no stack. */
export function bugBody(requestId: string): ErrorBody {
  return {
    error: {
      code: null,
      message: 'The agent failed to answer this request; the failure is in its log.',
      hint: `Tell whoever runs the agent the request id ${requestId}.`,
      requestId,
    },
  };
}
