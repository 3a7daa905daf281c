/**
 * The shapes the web page receives from the gateway, in one file without imports, so that the server and the
 * page's own TypeScript (src/web/client, compiled for browsers) share them.
 */

/** A cluster's public status (src/clusters/model.ts CLUSTER_STATUSES). */
export type UiStatus = "PENDING" | "RUNNING" | "STOPPING" | "STOPPED" | "FAILED";

/** What the page shows of a cluster (src/web/view.ts): nothing secret, no address inside the cluster network. */
export interface UiCluster {
  name: string;
  user: string;
  status: UiStatus;
  /** Why it stopped or failed (or is stopping). */
  reason: string | null;
  options: Record<string, unknown>;
  /** ms since the epoch. */
  createdAt: number;
  stopTime: number | null;
  workers: {
    /** Connected to the scheduler, as its heartbeats report. */
    connected: number;
    /** Started, not connected yet. */
    starting: number;
    /** What the scheduler last asked for. */
    requested: number;
  };
  /** The scheduler's plus the connected workers'. */
  cores: number;
  memoryBytes: number;
  workerCores: number;
  workerMemoryBytes: number;
  dashboard: boolean;
  /** Seconds without activity after which the scheduler stops itself; 0: never. The scheduler keeps its own clock. */
  idleTimeout: number;
  /** Seconds without a connected client before the gateway stops it; 0: never. */
  orphanTimeout: number;
  /** When the orphan timeout stops it if no client connects (ms since the epoch); null while a client is connected. */
  orphanDeadline: number | null;
}

/** A machine that runs clusters, for the operators' page. */
export interface NodeInfo {
  name: string;
  role: string;
  /** ready, down, unknown... as the engine says. */
  state: string;
  /** active, pause, drain (swarm); active for the local machine. */
  availability: string;
  cores: number;
  memoryBytes: number;
  /** This gateway's workers and schedulers running there; absent when the backend cannot tell. */
  workers?: number;
  schedulers?: number;
}

/** One entry of the components list. */
export interface LogComponentInfo {
  name: string;
  kind: "scheduler" | "worker";
  /** Its process or service still runs, so `follow` streams new lines. */
  live: boolean;
  /** The copy kept after the cluster stopped (logs/archive.ts). */
  kept: boolean;
}
