import { describe, expect, it } from "vitest";
import { PENDING_ERROR_GRACE_MS, taskOutcome, type TaskStatus } from "../../../src/backends/swarm/task-outcome.js";

const task = (State: string, Err?: string, Message?: string): TaskStatus => ({ Status: { State, Err, Message } });

describe("taskOutcome", () => {
  it("is running as soon as one task runs, whatever failed before", () => {
    expect(taskOutcome([task("rejected", "No such image: x"), task("running")], true, 0)).toEqual({ kind: "running" });
  });

  it("blames the node for a pinned task rejected, orphaned or failed for a reason other than its own exit", () => {
    for (const [state, err] of [
      ["rejected", "No such image: dgw-sidecar:latest"],
      ["rejected", "invalid mount config for type \"bind\": bind source path does not exist: /data"],
      ["orphaned", ""],
      ["failed", "starting container failed: error gathering device information"],
    ] as const) {
      const outcome = taskOutcome([task(state, err)], true, 0);
      expect(outcome).toMatchObject({ kind: "failed", fault: "node" });
      expect(outcome.kind === "failed" && outcome.reason).toContain(`task ${state}: ${err || "no detail"}`);
    }
  });

  it("blames the service when the process itself exited, or when the service is not pinned", () => {
    expect(taskOutcome([task("failed", "task: non-zero exit (1)")], true, 0)).toEqual({ kind: "failed", fault: "service", reason: "task failed: task: non-zero exit (1)" });
    expect(taskOutcome([task("rejected", "No such image: x")], false, 0)).toMatchObject({ kind: "failed", fault: "service" });
  });

  it("waits out the grace period of a task pending with an error, then blames the node it is pinned to", () => {
    const pending = [task("pending", "no suitable node (1 node not available for new tasks)")];
    expect(taskOutcome([task("preparing")], true, 0)).toEqual({ kind: "waiting", pendingError: false });
    expect(taskOutcome(pending, true, 0)).toEqual({ kind: "waiting", pendingError: true });
    expect(taskOutcome(pending, true, PENDING_ERROR_GRACE_MS + 1)).toEqual({
      kind: "failed", fault: "node", reason: "task cannot be scheduled: no suitable node (1 node not available for new tasks)",
    });
    expect(taskOutcome(pending, false, PENDING_ERROR_GRACE_MS + 1)).toMatchObject({ kind: "failed", fault: "service" });
    // A node with no room (a warm scheduler, other clusters): the worker goes to another node, the node is retried later.
    const full = [task("pending", "no suitable node (insufficient resources on 1 node)")];
    expect(taskOutcome(full, true, PENDING_ERROR_GRACE_MS + 1)).toMatchObject({ kind: "failed", fault: "node" });
    expect(taskOutcome(full, false, PENDING_ERROR_GRACE_MS + 1)).toMatchObject({ kind: "failed", fault: "service" });
  });
});
