import PQueue from 'p-queue';

/**
 * Bounds how many target transactions are open at once across all of an
 * agent's pipelines (HQ connections doing work), using p-queue: a pipeline
 * holds a slot from its first chunk to its commit.
 */
export class ApplyGate {
  private readonly queue: PQueue;

  constructor(concurrency: number) {
    this.queue = new PQueue({ concurrency });
  }

  /** Resolves with a release function once a slot is free. */
  acquire(): Promise<() => void> {
    return new Promise((granted) => {
      void this.queue.add(
        () =>
          new Promise<void>((release) => {
            let released = false;
            granted(() => {
              if (!released) {
                released = true;
                release();
              }
            });
          }),
      );
    });
  }

  get active(): number {
    return this.queue.pending;
  }
}
