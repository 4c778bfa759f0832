import type { Problem } from '../core/errors.js';

/** Problems in a stable order: by file, then line, then column (problems without a position first). */
export function sortProblems(problems: readonly Problem[]): Problem[] {
  return problems
    .map((p, i) => ({ p, i }))
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
