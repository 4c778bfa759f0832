import type { PositionCodec } from './position.js';
import type { SourceMessage, TableId } from './change.js';
import type { Logger } from './logger.js';

/**
 * A source of committed transactions from one database (a store's ERP, or
 * HQ for the down channel). Implementations live in `connectors/`.
 */
export interface Source<P> {
  readonly connector: string;
  readonly positions: PositionCodec<P>;
  /**
   * Opens a stream of transactions committed strictly after `after`
   * (`null`: from wherever the source's own durable cursor is). Anything the
   * source redelivers at or before `after` is dropped by the source.
   */
  open(after: P | null): Promise<SourceStream<P>>;
  /**
   * Acknowledging an idle position lets the source drop what lies below it
   * for good (a change table purged), so the target must hold that position
   * first: the pipeline stores it (now and then) before acknowledging it.
   * Absent: an idle position may be acknowledged as it comes (a slot only
   * moves on; the stream resumes from the target's position).
   */
  readonly idlePositionsStored?: boolean;
}

export interface SourceStream<P> {
  /** Messages in commit order. Ends (or throws) when the connection is lost. */
  readonly messages: AsyncIterator<SourceMessage<P>>;
  /** A message that is already buffered, without waiting; undefined when none is. */
  poll(): SourceMessage<P> | undefined;
  /** Everything up to `position` is durably applied at the target: the source may release it. */
  ack(position: P): void;
  /** Stops reading and closes the connection; pending `next()` calls settle. */
  close(): Promise<void>;
}

/** What a reader of a trigger-fed change table is told, whichever the database (pg-trigger, mssql-trigger). */
export interface ChangeTableReaderOptions {
  readonly url: string;
  /** For messages: "HQ", "store S001". */
  readonly role: string;
  readonly logger: Logger;
  /** How often to look for new changes without a notification (ms). Default 1000. */
  readonly pollMs?: number;
  /** Log rows read per query. Default 5000. */
  readonly pageRows?: number;
  /**
   * The reader's name in `branchline.change_log_readers` (e.g. `down:S001`):
   * acknowledged positions are recorded there so the log is purged only
   * below what every reader applied. None: acknowledgements are not recorded.
   */
  readonly reader?: string;
  /** Changes written on behalf of this origin are not delivered (no echo): the reader's own side. */
  readonly skipOrigin?: string | null;
  /** How to name the fix in BL-S006 (and BL-S007), e.g. `branchline snapshot --store S001`. */
  readonly reloadCommand?: string;
  /** The reads' statement_timeout (apply.statement_timeout_ms); a read with no answer 10 s past it drops the connection (BL-S010) and the pipeline reconnects. None: no timeout. */
  readonly statementTimeoutMs?: number;
}

/** What `install` prepares at a source and `uninstall` removes. */
export interface SourceInstaller {
  install(tables: readonly TableId[]): Promise<string[]>;
  /**
   * Makes the changes of these tables carry the whole old row (what
   * aggregates subtract). Idempotent; returns what it did, in sentences.
   */
  ensureFullBeforeImages(tables: readonly TableId[]): Promise<string[]>;
  uninstall(): Promise<string[]>;
}
