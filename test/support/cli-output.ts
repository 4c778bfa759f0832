import assert from 'node:assert/strict';

/** What a finished `branchline` child process left: its exit code and output. */
export type CliResult = { code: number | null; stdout: string; stderr: string };

/** A user error is sentences: no stack trace, no "internal error". */
export function assertNoStack(r: CliResult): void {
  for (const [name, text] of [
    ['stdout', r.stdout],
    ['stderr', r.stderr],
  ] as const) {
    assert.doesNotMatch(text, /^\s+at /m, `${name} has a stack trace:\n${text}`);
    assert.doesNotMatch(text, /internal error/, `${name} reports an internal error:\n${text}`);
  }
}

/** The exit code and both outputs, for an assertion's message. */
export function show(r: CliResult): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;
}
