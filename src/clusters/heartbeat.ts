/**
 * The pure part of the lifecycle: what a heartbeat changes, and what a running cluster's scale needs.
 * No I/O here, so every rule of the reference (section 4.4) is testable in isolation.
 */
import type { Capacity } from "../backends/backend.js";
import { Job, activeWorkers, type ClusterRecord, type WorkerRecord } from "./model.js";

export interface HeartbeatMessage {
  scheduler_address: string;
  dashboard_address: string;
  api_address: string;
  count: number;
  active_workers: unknown[];
  closing_workers: unknown[];
  closed_workers: unknown[];
}

export interface HeartbeatEffects {
  /** Addresses or count changed: the cluster needs reconciling. */
  clusterChanged: boolean;
  /** Workers whose target changed: each needs reconciling. */
  workersChanged: WorkerRecord[];
  /** At least one worker connected for the first time (resets the failure counter). */
  workerConnected: boolean;
}

/** Applies a heartbeat to a cluster that is not stopping; mutates the records and says what to reconcile. */
export function applyHeartbeat(cluster: ClusterRecord, msg: HeartbeatMessage, maxWorkers: number | null, now: number): HeartbeatEffects {
  const effects: HeartbeatEffects = { clusterChanged: false, workersChanged: [], workerConnected: false };
  cluster.lastHeartbeat = now;
  if (cluster.status < Job.RUNNING && msg.scheduler_address) {
    cluster.schedulerAddress = msg.scheduler_address;
    cluster.dashboardAddress = msg.dashboard_address;
    cluster.apiAddress = msg.api_address;
    effects.clusterChanged = true;
  }
  const count = maxWorkers === null ? msg.count : Math.min(msg.count, maxWorkers);
  if (count !== cluster.count) {
    cluster.count = count;
    effects.clusterChanged = true;
  }
  const active = new Set(msg.active_workers.map(String));
  const closing = new Set(msg.closing_workers.map(String));
  const closed = new Set(msg.closed_workers.map(String));
  const pending: WorkerRecord[] = [];
  for (const worker of cluster.workers.values()) {
    if (worker.status >= Job.STOPPED) continue;
    if (closing.has(worker.name) || active.has(worker.name)) {
      if (closing.has(worker.name)) worker.closeExpected = true;
      if (worker.status !== Job.RUNNING && worker.status < Job.CLOSING) {
        worker.status = Job.RUNNING;
        effects.workerConnected = true;
      }
    } else if (closed.has(worker.name)) {
      if (worker.target < Job.STOPPED) {
        worker.target = worker.closeExpected ? Job.STOPPED : Job.FAILED;
        effects.workersChanged.push(worker);
      }
    } else if (worker.target === Job.RUNNING) {
      pending.push(worker);
    }
  }
  if (effects.workerConnected) {
    cluster.workerFailures = 0;
    cluster.workerTimeouts = 0;
  }
  // Only workers that never connected are stopped here; connected ones leave through the scheduler's retirement.
  let excess = msg.active_workers.length + pending.length - count;
  pending.sort((a, b) => a.status - b.status || a.createdAt - b.createdAt);
  for (const worker of pending) {
    if (excess <= 0) break;
    worker.target = Job.STOPPED;
    effects.workersChanged.push(worker);
    excess--;
  }
  return effects;
}

/**
 * How long a worker may take to connect: `base`, doubled for each consecutive worker of the cluster that did not
 * connect in time (at most 8x). On a machine too loaded to start a worker within `base`, replacing each slow
 * worker after the same time would waste every start and never connect one.
 */
export function workerStartAllowance(cluster: ClusterRecord, baseSeconds: number): number {
  return baseSeconds * 2 ** Math.min(cluster.workerTimeouts ?? 0, 3);
}

export type ScaleDecision = { kind: "fail"; reason: string } | { kind: "start"; count: number } | { kind: "none" };

/**
 * What a RUNNING cluster needs now: fail after too many worker failures, or when it wants workers, has none and
 * every place that could run one failed it; else the workers missing up to what can be placed now.
 */
export function decideScale(cluster: ClusterRecord, failureLimit: number, capacity: Capacity | null): ScaleDecision {
  if (cluster.workerFailures >= failureLimit) {
    return { kind: "fail", reason: `${cluster.workerFailures} consecutive workers failed to start` };
  }
  const active = activeWorkers(cluster).length;
  if (capacity?.unplaceable && cluster.count > 0 && active === 0) {
    return { kind: "fail", reason: `no eligible node can run a worker: ${capacity.unplaceable}` };
  }
  const placeable = capacity?.now?.workers ?? capacity?.workers ?? null;
  const missing = (placeable === null ? cluster.count : Math.min(cluster.count, placeable)) - active;
  return missing > 0 ? { kind: "start", count: missing } : { kind: "none" };
}
