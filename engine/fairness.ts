// Fair scheduling between users: which BullMQ priority a render job gets.
// Pure, so the API (api/quotas.ts), the queue benchmark (bench/fairness.ts)
// and the tests all use this one rule.
//
// BullMQ takes the job with the LOWEST priority number first, and jobs of equal
// priority in the order they were added. Every render job gets a priority ≥ 1,
// so all of them sit in BullMQ's `prioritized` set (never in the plain `wait`
// list, which BullMQ would serve before any prioritized job).
//
// The rule: a user's job is numbered by how many of that user's videos are
// already unsettled (queued or rendering) when it is submitted, so the n-th
// outstanding video of every user competes in round n. A user with 30 waiting
// videos does not hold up another's first: that one gets priority 2, level
// with the heavy user's first round and ahead of the rest of its backlog. A
// new job never goes ahead of the same user's earlier waiting videos (it takes
// at least the highest priority among them), so each user's own videos still
// start in the order they were sent.

/** BullMQ refuses priorities above 2²¹ − 1. */
export const MAX_PRIORITY = 2 ** 21 - 1;

/** The operator lane (`?priority=high`): ahead of every user's round. */
export const HIGH_LANE_PRIORITY = 1;

/** A user's first outstanding video; the n-th more gets FIRST_ROUND_PRIORITY + n. */
export const FIRST_ROUND_PRIORITY = 2;

export type Lane = 'normal' | 'high';

export interface PriorityInput {
  lane: Lane;
  /** The user's other videos still queued or rendering at submit time. */
  active: number;
  /** The highest priority among the user's videos still queued (not yet rendering), if any. */
  highestQueued?: number | null;
}

/** The BullMQ priority of a new render job (1 = first). */
export function renderPriority({ lane, active, highestQueued }: PriorityInput): number {
  if (lane === 'high') return HIGH_LANE_PRIORITY;
  const round = FIRST_ROUND_PRIORITY + Math.max(0, Math.floor(active));
  const behindOwn = highestQueued && highestQueued > HIGH_LANE_PRIORITY ? highestQueued : 0;
  return Math.min(MAX_PRIORITY, Math.max(round, behindOwn));
}
