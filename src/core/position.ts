/**
 * How a connector's resume position is stored and compared. Each connector
 * provides one codec; the state tables hold the formatted text.
 */
export interface PositionCodec<P> {
  /** Stable name stored with the position, e.g. `pg-lsn`. */
  readonly kind: string;
  parse(text: string): P;
  format(position: P): string;
  compare(a: P, b: P): number;
}
