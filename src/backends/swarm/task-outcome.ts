/**
 * What the tasks of a just-created service say about its start, and whose fault a failure is: a worker
 * service is pinned to one node, so anything but its own process's exit is that node's fault.
 */

/** The fields of a Docker task this reads. */
export interface TaskStatus {
  Status?: { State?: string; Err?: string; Message?: string };
}

export type TaskOutcome =
  | { kind: "running" }
  /** Not running yet; `pendingError` when a task waits with an error (the grace period runs). */
  | { kind: "waiting"; pendingError: boolean }
  /** `node`: the node it was pinned to cannot run it; `service`: it would fail anywhere. */
  | { kind: "failed"; fault: "node" | "service"; reason: string };

/** A task pending with an error (no node fits, image missing) this long has failed. */
export const PENDING_ERROR_GRACE_MS = 5_000;

const FAILED_STATES = new Set(["failed", "rejected", "orphaned"]);
/** Docker's Err when the process itself exited (`task: non-zero exit (1)`): it would on any node. */
const OWN_EXIT = /non-zero exit/i;

/**
 * Classifies the tasks of one service. `pinned`: the service may run on one node only (a worker);
 * `pendingErrorMs`: how long a task has been pending with an error.
 */
export function taskOutcome(tasks: readonly TaskStatus[], pinned: boolean, pendingErrorMs: number): TaskOutcome {
  if (tasks.some((t) => t.Status?.State === "running")) return { kind: "running" };
  const failed = tasks.find((t) => FAILED_STATES.has(t.Status?.State ?? ""));
  if (failed) {
    const err = failed.Status?.Err ?? "";
    const reason = `task ${failed.Status?.State}: ${err || failed.Status?.Message || "no detail"}`;
    return { kind: "failed", fault: pinned && !OWN_EXIT.test(err) ? "node" : "service", reason };
  }
  const stuck = tasks.find((t) => t.Status?.State === "pending" && t.Status.Err);
  if (!stuck) return { kind: "waiting", pendingError: false };
  if (pendingErrorMs <= PENDING_ERROR_GRACE_MS) return { kind: "waiting", pendingError: true };
  return { kind: "failed", fault: pinned ? "node" : "service", reason: `task cannot be scheduled: ${stuck.Status!.Err}` };
}
