/**
 * The balance rule of several agents sharing the stores: each live agent
 * aims for its fair share, ceil(stores / live agents). Pure, so the rule is
 * tested without a database.
 */

/** The most stores one agent should hold. */
export function fairShare(stores: number, liveAgents: number): number {
  if (stores <= 0) return 0;
  return Math.ceil(stores / Math.max(1, liveAgents));
}

/** What an agent does this round: take free or expired leases up to its share, or hand back what it holds over it. */
export function balance(input: { readonly stores: number; readonly liveAgents: number; readonly held: number }): { readonly take: number; readonly handBack: number } {
  const share = fairShare(input.stores, input.liveAgents);
  return input.held > share ? { take: 0, handBack: input.held - share } : { take: share - input.held, handBack: 0 };
}

/** Which held stores go back: the last in code order, so the same ones move however often the rule runs. */
export function storesToHandBack(held: readonly string[], count: number): string[] {
  if (count <= 0) return [];
  return [...held].sort().reverse().slice(0, count);
}
