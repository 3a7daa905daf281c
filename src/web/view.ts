/**
 * What the web page shows of a cluster: its public facts and live counts, and nothing secret (no token, no
 * TLS key, no addresses inside the cluster network).
 */
import { Job, publicStatus, type ClusterRecord } from "../clusters/model.js";
import type { UiCluster } from "./wire.js";

export type { UiCluster };


/** The page's view of one cluster. */
export function uiCluster(c: ClusterRecord): UiCluster {
  const status = publicStatus(c.status, c.target);
  const workers = [...c.workers.values()].filter((w) => w.target === Job.RUNNING);
  const connected = workers.filter((w) => w.status === Job.RUNNING).length;
  const running = status === "RUNNING";
  const orphanTimeout = c.config.orphanTimeout;
  return {
    name: c.name,
    user: c.user,
    status,
    reason: c.reason,
    options: c.options,
    createdAt: c.startTime,
    stopTime: c.stopTime,
    workers: { connected, starting: workers.length - connected, requested: c.count },
    cores: (status === "STOPPED" || status === "FAILED" ? 0 : c.config.schedulerCores) + connected * c.config.workerCores,
    memoryBytes: (status === "STOPPED" || status === "FAILED" ? 0 : c.config.schedulerMemoryBytes) + connected * c.config.workerMemoryBytes,
    workerCores: c.config.workerCores,
    workerMemoryBytes: c.config.workerMemoryBytes,
    dashboard: running && Boolean(c.dashboardAddress),
    idleTimeout: c.config.idleTimeout,
    orphanTimeout,
    orphanDeadline: running && orphanTimeout > 0 && c.clients === 0 ? c.lastClientSeen + orphanTimeout * 1000 : null,
  };
}
