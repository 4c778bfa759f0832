/** Exponential back-off with full jitter between `initialMs` and `maxMs`. */
export class Backoff {
  private attempt = 0;

  constructor(private readonly options: { readonly initialMs: number; readonly maxMs: number }) {}

  next(): number {
    const ceiling = Math.min(this.options.maxMs, this.options.initialMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  reset(): void {
    this.attempt = 0;
  }
}
