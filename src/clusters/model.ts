/**
 * Cluster and worker records, their internal states, and the one mapping to the public status.
 */
import type { BackendState } from "../backends/backend.js";
import type { MountDefinition } from "../options/mounts.js";

/** Internal state of a cluster or worker: each record has a current `status` and a `target`. */
export const Job = {
  CREATED: 1,
  SUBMITTED: 2,
  RUNNING: 3,
  CLOSING: 4,
  STOPPED: 5,
  FAILED: 6,
} as const;
export type Job = (typeof Job)[keyof typeof Job];

export const CLUSTER_STATUSES = ["PENDING", "RUNNING", "STOPPING", "STOPPED", "FAILED"] as const;
export type ClusterStatus = (typeof CLUSTER_STATUSES)[number];

/** What a user may configure for a cluster, after options and limits are applied. */
export interface ClusterConfig {
  workerCores: number;
  workerThreads: number;
  workerMemoryBytes: number;
  schedulerCores: number;
  schedulerMemoryBytes: number;
  environment: Record<string, string>;
  idleTimeout: number;
  orphanTimeout: number;
  maxWorkers: number | null;
  image: string | null;
  /** Allow-listed mounts chosen through options (options/mounts.ts); absent in records from before mounts. */
  mounts?: MountDefinition[];
  /** Generic resources (GPU...) each worker reserves and advertises to Dask, by kind; absent: none. */
  workerResources?: Record<string, number>;
}

export interface ClusterEvent {
  time: number;
  kind: string;
  message: string;
}

export interface WorkerRecord {
  readonly name: string;
  status: Job;
  target: Job;
  /** The scheduler chose to retire it, so its disappearance is no failure. */
  closeExpected: boolean;
  readonly createdAt: number;
  submittedAt: number | null;
  state: BackendState;
}

/** Why the pool stopped one of its warm schedulers (a label of the recycled metric). */
export const RECYCLE_REASONS = ["max_age", "config_changed", "claim_failed", "died", "start_failed", "interrupted_claim"] as const;
export type RecycleReason = (typeof RECYCLE_REASONS)[number];

/** What marks a record as a warm scheduler of the pool (clusters/pool.ts): owned by the gateway, seen by no user. */
export interface PoolMembership {
  /** The pool key of the configuration it was started with (poolKey in clusters/pool.ts). */
  key: string;
  /** A claim took it and is checking it: no other claim may, and the pool does not count it as ready. */
  claiming?: boolean;
  /** Set when the pool itself stopped it, and why. */
  recycled?: RecycleReason;
}

export interface ClusterRecord {
  readonly name: string;
  /** The owner; "" for a warm scheduler of the pool until a claim gives it to the claimant. */
  user: string;
  readonly token: string;
  readonly tlsCert: string;
  readonly tlsKey: string;
  /** The normalized options and what they configure; a claim sets the claimant's (they start the scheduler alike). */
  options: Record<string, unknown>;
  config: ClusterConfig;
  status: Job;
  target: Job;
  /** When the cluster was created, or claimed from the pool: what users see as its start, and what timeouts count from. */
  startTime: number;
  stopTime: number | null;
  /** Worker count the scheduler asked for in its last heartbeat. */
  count: number;
  schedulerAddress: string;
  dashboardAddress: string;
  apiAddress: string;
  lastHeartbeat: number | null;
  /** Consecutive worker start failures; reset when a worker connects. */
  workerFailures: number;
  /** Consecutive workers that did not connect in time; each one doubles the next one's time. Reset when one connects. */
  workerTimeouts?: number;
  /** Why the cluster stopped or failed, once it did. */
  reason: string | null;
  events: ClusterEvent[];
  state: BackendState;
  readonly workers: Map<string, WorkerRecord>;
  /** Connected clients through the relay, and since when there were none. */
  clients: number;
  lastClientSeen: number;
  /** The scheduler's Python, dask, distributed and dask-gateway versions, once it answered them. */
  versions?: Record<string, string>;
  /** Present while the record is a warm scheduler of the pool. */
  pool?: PoolMembership;
}

/** The public status for a (status, target) pair, as the reference maps it. */
export function publicStatus(status: Job, target: Job): ClusterStatus {
  if (target === Job.RUNNING) {
    return status === Job.RUNNING ? "RUNNING" : status < Job.RUNNING ? "PENDING" : "STOPPING";
  }
  if (status === Job.STOPPED) return "STOPPED";
  if (status === Job.FAILED) return "FAILED";
  return "STOPPING";
}

/** A cluster is active until a stop is requested: that is what the default list shows. */
export function isActive(cluster: ClusterRecord): boolean {
  return cluster.target <= Job.RUNNING;
}

/** Users' clusters, as opposed to the pool's warm schedulers, which no user (not even an admin) may see. */
export function isUserCluster(cluster: ClusterRecord): boolean {
  return cluster.pool === undefined;
}

/** The cluster object on the wire: exactly the eight keys the client accepts (an extra key crashes it). */
export function clusterToWire(cluster: ClusterRecord) {
  const status = publicStatus(cluster.status, cluster.target);
  const running = status === "RUNNING";
  return {
    name: cluster.name,
    dashboard_route: running && cluster.dashboardAddress ? `/clusters/${cluster.name}/status` : null,
    status,
    start_time: cluster.startTime,
    stop_time: cluster.stopTime,
    options: cluster.options,
    tls_cert: running ? cluster.tlsCert : null,
    tls_key: running ? cluster.tlsKey : null,
  };
}

/** Workers whose target is still RUNNING, whatever their current state. */
export function activeWorkers(cluster: ClusterRecord): WorkerRecord[] {
  return [...cluster.workers.values()].filter((w) => w.target === Job.RUNNING);
}
