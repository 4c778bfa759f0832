import type { Problem } from '../core/errors.js';

/** Longer runs of text without a space are shortened in messages: no name a database takes is this long. */
const LONGEST_ECHO = 120;

/**
 * A problem whose sentence repeats what the file wrote (a name, a key, a
 * literal) keeps the first characters of a huge value and says how long it
 * was, so a 4 MB table name gives a readable line, not 4 MB of output.
 */
const LONG_RUN = new RegExp(`[^\\s"]{${LONGEST_ECHO + 1},}`, 'gu');

function shortened(p: Problem): Problem {
  const cut = (s: string) => s.replace(LONG_RUN, (run) => `${[...run].slice(0, 60).join('')}… (${run.length} characters)`);
  const message = cut(p.message);
  const hint = p.hint === undefined ? undefined : cut(p.hint);
  return message === p.message && hint === p.hint ? p : { ...p, message, ...(hint === undefined ? {} : { hint }) };
}

/** Problems in a stable order: by file, then line, then column (problems without a position first); huge echoed values shortened. */
export function sortProblems(problems: readonly Problem[]): Problem[] {
  return problems
    .map((p, i) => ({ p: shortened(p), i }))
    .sort((a, b) => {
      const x = a.p.location;
      const y = b.p.location;
      const fileA = x?.file ?? '';
      const fileB = y?.file ?? '';
      if (fileA !== fileB) return fileA < fileB ? -1 : 1;
      return (x?.line ?? 0) - (y?.line ?? 0) || (x?.column ?? 0) - (y?.column ?? 0) || a.i - b.i;
    })
    .map((e) => e.p);
}

/** Largest mapping or entities file read: the example's files are 1 to 3 KB; a larger file is something else dropped in the folder. */
export const MAX_MAPPING_FILE_BYTES = 1024 * 1024;

/** BL-M026 for a file past MAX_MAPPING_FILE_BYTES (nothing of it is parsed), else null. */
export function tooLarge(file: string, text: string): Problem | null {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes <= MAX_MAPPING_FILE_BYTES) return null;
  return {
    code: 'BL-M026',
    message: `is ${(bytes / 1024 / 1024).toFixed(1)} MB; a mapping file is at most ${MAX_MAPPING_FILE_BYTES / 1024 / 1024} MB (a few kilobytes is usual), so it was not read.`,
    hint: 'Move the file out of the mapping folder if it is not a mapping file; otherwise split it (one file per source table).',
    location: { file, line: 1, column: 1 },
  };
}
