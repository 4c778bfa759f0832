/**
 * User-facing errors: each has a stable code (documented in docs/errors.md),
 * a sentence that says what happened, and a hint that says what to do.
 * The CLI prints them without a stack trace; anything that is not a
 * BranchlineError is a bug and is printed with its stack.
 */
export const ERROR_CODES = {
  // configuration (BL-C)
  'BL-C001': 'configuration file not found or unreadable',
  'BL-C002': 'configuration file is not valid YAML',
  'BL-C003': 'configuration does not match the schema',
  'BL-C004': 'configuration refers to an environment variable that is not set',
  'BL-C005': 'store named on the command line is not configured',
  'BL-C006': 'mapping directory not found',
  // central configuration (BL-C01x)
  'BL-C010': 'HQ has no published configuration',
  'BL-C011': 'store is not in the configuration HQ published',
  'BL-C012': 'configuration cannot be published centrally as written',
  'BL-C013': 'a published configuration version is damaged',
  // mapping files (BL-M)
  'BL-M001': 'mapping file is not valid YAML',
  'BL-M002': 'mapping file does not match the mapping schema',
  'BL-M003': 'source table not found at the store',
  'BL-M004': 'target table not found at HQ',
  'BL-M005': 'unknown source column',
  'BL-M006': 'unknown target column',
  'BL-M007': 'expression does not parse',
  'BL-M008': 'expression type does not fit the target column',
  'BL-M009': 'target key is not unique at HQ',
  'BL-M010': 'target key column cannot be computed from the source key',
  'BL-M011': 'two mapping files map the same source table to the same target table',
  'BL-M012': 'unknown function in an expression',
  'BL-M013': 'source table has no primary key or replica identity',
  'BL-M014': 'required target column is not mapped',
  'BL-M015': 'expression failed on a row',
  'BL-M016': 'filter is not a true/false expression',
  'BL-M017': 'mapping settings contradict each other',
  'BL-M018': 'aggregate mapping is not well formed',
  'BL-M019': 'aggregate source table lacks REPLICA IDENTITY FULL',
  'BL-M020': 'association to an undeclared or badly declared entity',
  'BL-M021': 'a row needs an association that does not exist yet (parked)',
  'BL-M022': 'target tables reference each other through foreign keys HQ checks at once (a cycle)',
  'BL-M023': 'a down-only setting in an up mapping',
  'BL-M024': 'route, effective_at or labels names a column that does not fit',
  'BL-M025': 'a settlement declaration in a mapping file does not fit its tables',
  'BL-M026': 'a mapping or entities file is larger than 1 MB',
  // databases and connectivity (BL-D)
  'BL-D001': 'database unreachable',
  'BL-D002': 'database refused the credentials',
  'BL-D003': 'database is not configured for logical replication',
  'BL-D004': 'database user lacks a required privilege',
  'BL-D005': 'branchline is not installed on this database',
  'BL-D006': 'an embedded PostgreSQL server could not start',
  'BL-D007': 'a SQL Server column has a type branchline cannot capture',
  'BL-D008': 'the SQL Server is older than 2016 SP1',
  'BL-D009': 'max_slot_wal_keep_size is unbounded: a slot can fill the store\'s disk',
  'BL-D010': 'a store\'s clock differs from HQ\'s by more than the doctor allows',
  'BL-D011': 'a database link crosses the network without TLS, or without checking the certificate',
  // sources (BL-S)
  'BL-S001': 'replication slot is missing',
  'BL-S002': 'replication slot is in use by another connection',
  'BL-S003': 'replication slot was invalidated',
  'BL-S004': 'publication is missing',
  'BL-S005': 'replication stream went silent',
  'BL-S006': 'the HQ change log no longer holds what a store needs (fresh initial load needed)',
  'BL-S007': 'an initial load of the store has not been done or did not finish',
  'BL-S008': 'an initial load into HQ would add to what HQ already holds of the store (aggregates counted twice)',
  'BL-S009': 'an interrupted initial load into HQ cannot be finished exactly (the store changed a table an aggregate sums)',
  'BL-S010': 'a database stopped answering on an open connection (no reply within the deadline, no reset)',
  // apply (BL-A)
  'BL-A001': 'HQ rejected a batch',
  'BL-A002': 'another agent is already running this pipeline',
  'BL-A003': 'the position stored at HQ was written by another connector',
  'BL-A004': 'HQ rejected one row (parked)',
  'BL-A005': 'another live agent at HQ has the same lease.agent_id',
  'BL-A006': 'a store\'s lease could not be renewed or was lost; its pipelines were stopped (self-fencing)',
  // associations and parked changes (BL-P)
  'BL-P001': 'unknown entity or store in an association command',
  'BL-P002': 'HQ key does not exist in the table the entity references',
  'BL-P003': 'code or HQ key already associated otherwise',
  'BL-P004': 'association CSV file is not readable or not well formed',
  'BL-P005': 'no parked change with that id',
  'BL-P006': 'change parked behind an earlier parked change of the same row',
  'BL-P007': 'the mapping file of a parked change is gone',
  // shelf labels (BL-L)
  'BL-L001': 'shelf-label folder cannot be created or written',
  'BL-L002': 'a shelf label price is not decimal text',
  // settlement checks (BL-K)
  'BL-K001': 'a settlement check names a kind of record no mapping file declares',
  'BL-K002': 'a settlement check request is not well formed',
  // cross-store queries (BL-Q)
  'BL-Q001': 'a cross-store query is not configured',
  'BL-Q002': 'a cross-store query\'s table or columns do not fit HQ',
  // HTTP (BL-H)
  'BL-H001': 'HTTP request without a valid token',
  'BL-H002': 'HTTP request is not well formed',
  'BL-H003': 'no such HTTP route or method',
  'BL-H004': 'HTTP request body too large',
  'BL-H005': 'the HTTP port cannot be opened',
  'BL-H006': 'the agent stopped while answering an HTTP request',
  // operations (BL-O)
  'BL-O001': 'a scheduled report could not be written or sent',
  // reconcile (BL-R)
  'BL-R001': 'reconcile --direction down at a SQL Server store (it has no down channel)',
  'BL-R002': 'a table to reconcile has no primary key at its source',
  'BL-R003': 'reconcile --fix refused while an agent runs the pipeline',
  'BL-R004': 'reconcile may not read a table at a SQL Server store',
  // usage (BL-U)
  'BL-U001': 'invalid command-line arguments',
  'BL-U002': 'demo verification failed',
  'BL-U003': 'the options of a centrally configured store agent are incomplete or mixed with --config',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface SourceLocation {
  readonly file: string;
  /** 1-based */
  readonly line: number;
  /** 1-based */
  readonly column: number;
}

export interface Problem {
  readonly code: ErrorCode;
  readonly message: string;
  readonly hint?: string;
  readonly location?: SourceLocation;
}

export function formatLocation(loc: SourceLocation): string {
  return `${loc.file}:${loc.line}:${loc.column}`;
}

export function formatProblem(p: Problem): string {
  const where = p.location ? `${formatLocation(p.location)}: ` : '';
  const hint = p.hint ? ` ${p.hint}` : '';
  return `${where}${p.code} ${p.message}${hint}`;
}

/** A problem as a sentence without its code, for places that keep the code apart (status, parked changes). */
export function describeProblem(p: Problem): string {
  const where = p.location ? `${formatLocation(p.location)}: ` : '';
  return `${where}${p.message}${p.hint ? ` ${p.hint}` : ''}`;
}

export class BranchlineError extends Error {
  readonly code: ErrorCode;
  readonly problem: Problem;
  readonly hint: string | undefined;
  readonly location: SourceLocation | undefined;

  constructor(problem: Problem, options?: { cause?: unknown }) {
    super(formatProblem(problem), options);
    this.name = 'BranchlineError';
    this.code = problem.code;
    this.problem = problem;
    this.hint = problem.hint;
    this.location = problem.location;
  }
}

/** Several problems found at once (e.g. every error of every mapping file). */
export class ProblemsError extends BranchlineError {
  readonly problems: readonly Problem[];

  constructor(summary: string, problems: readonly Problem[]) {
    const first = problems[0];
    super({ code: first?.code ?? 'BL-M002', message: summary });
    this.name = 'ProblemsError';
    this.problems = problems;
    this.message = [summary, ...problems.map((p) => `  ${formatProblem(p)}`)].join('\n');
  }
}

export function isBranchlineError(e: unknown): e is BranchlineError {
  return e instanceof BranchlineError;
}
