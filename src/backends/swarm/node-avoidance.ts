/**
 * Which swarm nodes each cluster avoids, until when and why: a node that could not start a worker of a
 * cluster (image missing there, a mount path missing, node down) is left out of that cluster's placements for
 * a back-off, so one bad node costs a cluster a few seconds instead of its workers.
 */

/** A node a cluster avoids now. */
export interface AvoidedNode {
  nodeId: string;
  hostname: string;
  /** Docker's reason for the last failure there. */
  reason: string;
  /** Whole seconds until the node is used again. */
  secondsLeft: number;
  /** Consecutive failures of the cluster's workers there. */
  failures: number;
}

interface Entry {
  hostname: string;
  reason: string;
  /** Consecutive failures of this cluster's workers on the node; each doubles the back-off. */
  failures: number;
  until: number;
}

/** The back-off grows to at most this many times the base. */
const MAX_FACTOR = 8;

export class NodeAvoidance {
  /** Cluster name → node id → entry. */
  private readonly clusters = new Map<string, Map<string, Entry>>();

  constructor(
    private readonly baseSeconds: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records that a worker of the cluster failed on the node; answers how many seconds the node is avoided. */
  fail(cluster: string, nodeId: string, hostname: string, reason: string): number {
    const nodes = this.clusters.get(cluster) ?? new Map<string, Entry>();
    this.clusters.set(cluster, nodes);
    const now = this.now();
    const entry = nodes.get(nodeId) ?? { hostname, reason, failures: 0, until: 0 };
    // A failure while the node is avoided comes from a start placed before the first one was known:
    // the same incident, so it does not double the back-off again.
    if (entry.until <= now) {
      entry.failures++;
      entry.until = now + 1000 * this.backoff(entry.failures);
    }
    Object.assign(entry, { hostname, reason });
    nodes.set(nodeId, entry);
    return Math.ceil((entry.until - now) / 1000);
  }

  /** A worker of the cluster started on the node: its earlier failures there are forgiven. */
  succeeded(cluster: string, nodeId: string): void {
    this.clusters.get(cluster)?.delete(nodeId);
  }

  /** The nodes the cluster avoids now; a node whose back-off expired is used again. */
  avoided(cluster: string): AvoidedNode[] {
    const now = this.now();
    return [...(this.clusters.get(cluster) ?? new Map<string, Entry>())]
      .filter(([, e]) => e.until > now)
      .map(([nodeId, e]) => ({ nodeId, hostname: e.hostname, reason: e.reason, secondsLeft: Math.ceil((e.until - now) / 1000), failures: e.failures }));
  }

  /** Forgets everything about a cluster (it stopped). */
  forget(cluster: string): void {
    this.clusters.delete(cluster);
  }

  private backoff(failures: number): number {
    return this.baseSeconds * Math.min(2 ** (failures - 1), MAX_FACTOR);
  }
}
