/**
 * Waits `ms`, or less when the function handed to `register` is called
 * (a notification, a lost connection, close()): how a polling reader sleeps.
 * `register` gets the wake function while the sleep lasts, and null after.
 */
export function wakeableSleep(ms: number, register: (wake: (() => void) | null) => void): Promise<void> {
  return new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    register(done);
    function done() {
      clearTimeout(t);
      register(null);
      resolve();
    }
  });
}
