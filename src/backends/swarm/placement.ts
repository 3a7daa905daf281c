/**
 * Worker placement on swarm nodes: which nodes may run workers, which one gets the next worker,
 * and how big a worker may be there. Pure functions over the node list.
 */
import type { Capacity, WorkerLaunch } from "../backend.js";
import type { AvoidedNode } from "./node-avoidance.js";
import { describeResources } from "../resources.js";

export interface SwarmNode {
  ID: string;
  Spec?: { Availability?: string; Labels?: Record<string, string>; Role?: string };
  Status?: { State?: string };
  Description?: { Hostname?: string; Resources?: { NanoCPUs?: number; MemoryBytes?: number; GenericResources?: GenericResource[] } };
}

/** A node's generic resource, as its engine's `node-generic-resources` declares it: a count, or one named unit. */
export interface GenericResource {
  DiscreteResourceSpec?: { Kind?: string; Value?: number };
  NamedResourceSpec?: { Kind?: string; Value?: string };
}

/** How many units of each generic resource kind a node offers. */
export function genericResources(node: SwarmNode): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of node.Description?.Resources?.GenericResources ?? []) {
    const kind = r.DiscreteResourceSpec?.Kind ?? r.NamedResourceSpec?.Kind;
    if (!kind) continue;
    counts.set(kind, (counts.get(kind) ?? 0) + (r.DiscreteResourceSpec ? Number(r.DiscreteResourceSpec.Value ?? 0) : 1));
  }
  return counts;
}

/** Units of generic resources held by workers, per node id and kind. */
export type ResourcesHeld = Map<string, Map<string, number>>;

/**
 * The nodes that offer every generic resource a worker asks for, as many as it asks, beyond the units `held` by
 * workers already there (none given: what the nodes offer in all).
 */
export function nodesOffering(nodes: SwarmNode[], wanted: Record<string, number>, held: ResourcesHeld = new Map()): SwarmNode[] {
  const kinds = Object.entries(wanted);
  if (kinds.length === 0) return nodes;
  return nodes.filter((n) => {
    const offered = genericResources(n);
    return kinds.every(([kind, count]) => (offered.get(kind) ?? 0) - (held.get(n.ID)?.get(kind) ?? 0) >= count);
  });
}

/** Generic resources as a service label value (`GPU=1,FPGA=2`), and back. */
export function resourcesLabel(resources: Record<string, number>): string {
  return Object.entries(resources).map(([kind, n]) => `${kind}=${n}`).join(",");
}

/** Adds up the units that workers (node id and label value) hold on each node. */
export function resourcesHeld(workers: ReadonlyArray<{ node: string; label: string | undefined }>): ResourcesHeld {
  const held: ResourcesHeld = new Map();
  for (const { node, label } of workers) {
    for (const part of (label ?? "").split(",").filter(Boolean)) {
      const [kind, n] = part.split("=", 2);
      const kinds = held.get(node) ?? new Map<string, number>();
      kinds.set(kind!, (kinds.get(kind!) ?? 0) + (Number(n) || 0));
      held.set(node, kinds);
    }
  }
  return held;
}

const GIB = 1024 ** 3;
const MIN_WORKER_MEMORY = 256 * 1024 ** 2;

/** Ready, active nodes, optionally only those carrying a label (`name` or `name=value`). */
export function eligibleNodes(nodes: SwarmNode[], label: string | null): SwarmNode[] {
  const [key, value] = label ? label.split("=", 2) : [undefined, undefined];
  return nodes
    .filter((n) => n.Status?.State === "ready" && n.Spec?.Availability === "active")
    .filter((n) => !key || (value === undefined ? key in (n.Spec?.Labels ?? {}) : n.Spec?.Labels?.[key] === value))
    .sort((a, b) => a.ID.localeCompare(b.ID));
}

/** The eligible node with the fewest of this cluster's workers, below the per-node limit and not avoided; null if none. */
export function pickNode(nodes: SwarmNode[], used: Map<string, number>, perNode: number, avoided: ReadonlySet<string> = new Set()): SwarmNode | null {
  let best: SwarmNode | null = null;
  for (const node of nodes) {
    const n = used.get(node.ID) ?? 0;
    if (n < perNode && !avoided.has(node.ID) && (best === null || n < (used.get(best.ID) ?? 0))) best = node;
  }
  return best;
}

/**
 * How many workers of a cluster the eligible nodes hold: `perNode` each; and, while some cannot take one now, how
 * many they hold now: an avoided node keeps only the workers already there, a `waiting` node (not able to pull
 * yet) gets none until it can. The cluster cannot be placed at all once every node failed its workers
 * `failureLimit` times in a row.
 */
export function placementCapacity(nodes: SwarmNode[], perNode: number, avoided: readonly AvoidedNode[], used: Map<string, number>, waiting: readonly SwarmNode[] = [], failureLimit = 1): Capacity {
  const capacity: Capacity = {
    workers: nodes.length * perNode,
    why: `the swarm has ${plural(nodes.length, "eligible node")} and places at most ${plural(perNode, "worker")} of a cluster on each`,
  };
  const eligible = new Set(nodes.map((n) => n.ID));
  const avoidedHere = avoided.filter((a) => eligible.has(a.nodeId));
  const avoidedIds = new Set(avoidedHere.map((a) => a.nodeId));
  const waitingHere = waiting.filter((n) => eligible.has(n.ID) && !avoidedIds.has(n.ID));
  if (avoidedHere.length === 0 && waitingHere.length === 0) return capacity;
  const kept = avoidedHere.reduce((n, a) => n + Math.min(perNode, used.get(a.nodeId) ?? 0), 0);
  const reasons: string[] = [];
  if (avoidedHere.length > 0) {
    const names = avoidedHere.map((a) => `${a.hostname} (${a.reason}; avoided for another ${a.secondsLeft} s)`);
    reasons.push(`the cluster avoids ${plural(avoidedHere.length, "node")} where its workers failed to start: ${names.join(", ")}`);
  }
  if (waitingHere.length > 0) {
    const names = waitingHere.map((n) => n.Description?.Hostname ?? n.ID);
    reasons.push(`${names.join(", ")} cannot pull images yet (no task of the swarm's registry runs there yet)`);
  }
  const why = reasons.join("; ");
  const result: Capacity = { ...capacity, now: { workers: (nodes.length - avoidedHere.length - waitingHere.length) * perNode + kept, why } };
  // Unplaceable once every node failed the cluster `failureLimit` times in a row: one failure may be passing.
  const exhausted = nodes.length > 0 && avoidedHere.length === nodes.length && avoidedHere.every((a) => a.failures >= failureLimit);
  return exhausted ? { ...result, unplaceable: why } : result;
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

/** Fits a worker to its node: never more threads or memory than the node has beyond the reserve. */
export function sizeWorker(node: SwarmNode, launch: WorkerLaunch, reservedCores: number, reservedMemoryGiB: number): WorkerLaunch {
  const cpus = (node.Description?.Resources?.NanoCPUs ?? 0) / 1e9;
  const memory = node.Description?.Resources?.MemoryBytes ?? 0;
  const freeCores = Math.max(1, Math.floor(cpus - reservedCores));
  const freeMemory = Math.max(MIN_WORKER_MEMORY, memory - reservedMemoryGiB * GIB);
  const cores = cpus > 0 ? Math.min(launch.workerCores, freeCores) : launch.workerCores;
  return {
    ...launch,
    workerCores: cores,
    workerThreads: cpus > 0 ? Math.min(launch.workerThreads, freeCores) : launch.workerThreads,
    workerMemoryBytes: memory > 0 ? Math.min(launch.workerMemoryBytes, freeMemory) : launch.workerMemoryBytes,
  };
}

/**
 * How many of a cluster's workers the nodes offering its generic resources can hold now, beside the units other
 * workers hold; null when that is all of them. `own`: this cluster's workers per node (their units are in `held`).
 */
export function resourcesNow(nodes: SwarmNode[], perNode: number, wanted: Record<string, number>, held: ResourcesHeld, own: Map<string, number>): { workers: number; why: string } | null {
  const kinds = Object.entries(wanted);
  if (kinds.length === 0) return null;
  const busy: string[] = [];
  let workers = 0;
  for (const node of nodes) {
    const offered = genericResources(node);
    const extra = Math.min(...kinds.map(([kind, n]) => Math.floor(((offered.get(kind) ?? 0) - (held.get(node.ID)?.get(kind) ?? 0)) / n)));
    const here = Math.min(perNode, (own.get(node.ID) ?? 0) + Math.max(0, extra));
    if (here < perNode) busy.push(`${node.Description?.Hostname ?? node.ID} (${kinds.map(([kind]) => `${kind} ${held.get(node.ID)?.get(kind) ?? 0} of ${offered.get(kind) ?? 0} held`).join(", ")})`);
    workers += here;
  }
  return busy.length === 0 ? null : { workers, why: `the generic resources of ${busy.join(", ")} are held by other workers` };
}

/** Why no node could ever hold a worker that asks for these generic resources, or null when some node can. */
export function resourcesShortfall(nodes: SwarmNode[], wanted: Record<string, number>): string | null {
  if (nodesOffering(nodes, wanted).length > 0) return null;
  const most = Object.keys(wanted).map((kind) => {
    const best = nodes.reduce<{ n: number; host: string }>((b, node) => {
      const n = genericResources(node).get(kind) ?? 0;
      return n > b.n ? { n, host: node.Description?.Hostname ?? node.ID } : b;
    }, { n: 0, host: "" });
    return best.n > 0 ? `${kind}: at most ${best.n} (${best.host})` : `${kind}: none`;
  });
  return `each worker asks for ${describeResources(wanted)}, more than any eligible swarm node offers (${most.join("; ")}); nodes declare generic resources with the engine's node-generic-resources setting`;
}
