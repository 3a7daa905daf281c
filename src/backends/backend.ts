/**
 * The small interface every place that runs clusters implements. The cluster manager decides *what*
 * should happen; a backend only knows *how* to start, stop and check one scheduler or worker.
 */
import type { Readable } from "node:stream";
import type { ClusterStore } from "../clusters/store.js";
import type { MountDefinition } from "../options/mounts.js";
import type { NodeInfo } from "../web/wire.js";

export type { NodeInfo };

/** JSON-serialisable facts a backend needs to find its scheduler or worker again (pid, service id...). */
export type BackendState = Record<string, string | number | boolean | null>;

/** Everything a backend needs to launch a cluster's scheduler. */
export interface SchedulerLaunch {
  name: string;
  user: string;
  token: string;
  tlsCert: string;
  tlsKey: string;
  /** Base URL of the gateway API as schedulers reach it; ends in /api. */
  apiUrl: string;
  heartbeatPeriod: number;
  adaptivePeriod: number;
  idleTimeout: number;
  schedulerCores: number;
  schedulerMemoryBytes: number;
  environment: Record<string, string>;
  /** The `image` cluster option; null: the backend's default image. */
  image: string | null;
  /** Allow-listed mounts the cluster chose, `{user}` not yet filled in (options/mounts.ts resolveMount). */
  mounts: MountDefinition[];
  /** Generic resources (GPU...) each worker reserves and advertises to Dask, by kind. */
  workerResources: Record<string, number>;
  /**
   * The owner again, when the scheduler mounts a per-user volume: `user` is given at the claim of a warm scheduler,
   * so this makes such clusters miss the pool (a warm scheduler cannot have the claimant's volume).
   */
  mountsUser?: string;
  /**
   * Started for the warm pool: no owner yet, idle timeout 0, and the claim preload (backends/pool-preload.ts) added
   * after the gateway's, so that the claim arms the idle timeout. Only the start of the scheduler looks at it.
   */
  warm?: boolean;
}

/** Everything a backend needs to launch one worker. */
export interface WorkerLaunch {
  cluster: SchedulerLaunch;
  clusterState: BackendState;
  workerName: string;
  schedulerAddress: string;
  workerCores: number;
  workerThreads: number;
  workerMemoryBytes: number;
}

/** A start or stop that cannot succeed by retrying; its message becomes the recorded reason. */
export class BackendError extends Error {}

/**
 * A worker start that failed because of the node it was placed on (image missing there, a bind-mount path
 * missing, node down), not because of the cluster: the backend avoids that node for the cluster for a while.
 */
export class NodeError extends BackendError {
  constructor(
    /** The node's name (its hostname). */
    readonly node: string,
    /** The engine's own reason. */
    readonly reason: string,
    /** How long the cluster avoids the node from now. */
    readonly backoffSeconds: number,
  ) {
    super(`node ${node}: ${reason}`);
  }
}

/** How many workers a backend can place for one cluster. */
export interface Capacity {
  /** The most it can ever place, and why: a scale request is clamped to it, so it never shrinks for a passing failure. */
  workers: number;
  why: string;
  /** Present while some places are avoided after failures or not usable yet: the most it can place now, and why. */
  now?: { workers: number; why: string };
  /** Set when every place failed this cluster's workers and none is about to become usable: why. */
  unplaceable?: string;
}

/** One component of a cluster that may have a log: the scheduler, or a worker by its name. */
export interface LogComponent {
  kind: "scheduler" | "worker";
  /** "scheduler", or the worker's name. */
  name: string;
  /** What the backend recorded for it (a worker's pid or service id); {} when it has no record any more. */
  state: BackendState;
}

/** Which part of a log to read (src/logs/lines.ts formats every line as `<RFC 3339 UTC time> <text>`). */
export interface LogQuery {
  /** The last N lines only; null: all. */
  tail: number | null;
  /** Only lines at or after this time (ms since the epoch); null: from the start. */
  since: number | null;
  /** Keep streaming new lines until the stream is destroyed (the route ends it once the component has ended). */
  follow: boolean;
}


export interface Backend {
  readonly kind: string;
  /** Starts the scheduler; resolves once it is launched (not necessarily connected). */
  startCluster(launch: SchedulerLaunch): Promise<BackendState>;
  /** Stops the scheduler and removes everything the cluster owns; idempotent. */
  stopCluster(launch: SchedulerLaunch, state: BackendState): Promise<void>;
  startWorker(launch: WorkerLaunch): Promise<BackendState>;
  /** Stops one worker; idempotent. */
  stopWorker(launch: WorkerLaunch, state: BackendState): Promise<void>;
  /** Why the scheduler is gone, or null while it is alive (or its liveness is unknown). */
  checkCluster(launch: SchedulerLaunch, state: BackendState): Promise<string | null>;
  /** Why the worker is gone, or null while it is alive. */
  checkWorker(launch: WorkerLaunch, state: BackendState): Promise<string | null>;
  /** How many workers the backend can place for a cluster, and why; absent when unbounded. */
  capacity?(launch: SchedulerLaunch): Promise<Capacity>;
  /** Rejects with the reason when the backend cannot take work now (its engine is unreachable). */
  ping?(): Promise<void>;
  /** Removes what clusters not in `known` left behind (after a crash of an earlier gateway). */
  cleanupOrphans?(known: ReadonlySet<string>): Promise<void>;
  /** A store for cluster records that lives with the backend's clusters (the swarm), when configured. */
  recordStore?(onBadRecord: (cluster: string, err: Error) => void): ClusterStore | undefined;
  /**
   * What, beyond the launch itself, fixes how this backend starts a scheduler (its command, default image,
   * placement): part of the warm pool's key, so a changed setting replaces the warm schedulers it affects.
   */
  schedulerFingerprint?(): string;
  /** Names of the components of a cluster that have a log now (src/backends/<kind>/logs.ts). */
  logComponents?(launch: SchedulerLaunch, state: BackendState): Promise<string[]>;
  /** One component's log as timestamped lines; null when it has none. Destroying the stream releases everything. */
  logs?(launch: SchedulerLaunch, state: BackendState, component: LogComponent, query: LogQuery): Promise<Readable | null>;
  /** The machines clusters run on, for the operators' page. */
  nodes?(): Promise<NodeInfo[]>;
  /** Releases resources of the backend itself (not the clusters). */
  close(): Promise<void>;
}
