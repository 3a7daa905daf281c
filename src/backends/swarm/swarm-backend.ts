/**
 * Runs each cluster on Docker Swarm: credentials as secrets, the scheduler as a dnsrr service on the
 * gateway's overlay network, and each worker as a service pinned to its own node.
 */
import { readFileSync } from "node:fs";
import Docker from "dockerode";
import type { ClusterStore } from "../../clusters/store.js";
import type { GatewayConfig } from "../../config/config.js";
import type { Logger } from "../../logging.js";
import type { Readable } from "node:stream";
import {
  BackendError, NodeError,
  type Backend, type BackendState, type Capacity, type LogComponent, type LogQuery, type NodeInfo, type SchedulerLaunch, type WorkerLaunch,
} from "../backend.js";
import { serviceLogStream, swarmNodes } from "./logs.js";
import {
  LABEL, SECRET_KINDS, schedulerServiceSpec, secretName, secretSpecs, workerServiceSpec,
  type SecretKind, type SwarmSettings,
} from "./docker-objects.js";
import { NodeAvoidance } from "./node-avoidance.js";
import {
  eligibleNodes, nodesOffering, pickNode, placementCapacity, resourcesHeld, resourcesNow, resourcesShortfall, sizeWorker,
  type ResourcesHeld, type SwarmNode,
} from "./placement.js";
import { describeResources } from "../resources.js";
import { missingDaskReason, stackExitReason } from "../stack-preload.js";
import { parseRegistry, readRegistryAuth, resolveImage, type RegistryAuth } from "./images.js";
import { recordsKey, swarmRecordStore } from "./record-store.js";
import { taskOutcome } from "./task-outcome.js";

const TASK_POLL_MS = 500;
/** Services of the swarm's own registry carry this label (docker/registry.yml). */
const REGISTRY_LABEL = "dask-gateway.registry";
/** The serialization key of placements of workers that hold generic resources (one at a time, swarm-wide). */
const GENERIC_PLACEMENT = "\0generic-resources";
const ENDED_STATES = new Set(["failed", "rejected", "orphaned", "shutdown", "complete", "remove"]);

export class SwarmBackend implements Backend {
  readonly kind = "swarm";
  /** One placement at a time per cluster, so concurrent scale-ups never pick the same node. */
  private readonly placing = new Map<string, Promise<unknown>>();
  /** Nodes each cluster leaves out of its placements for a while, after its workers failed to start there. */
  private readonly avoidance: NodeAvoidance;

  private constructor(
    private readonly docker: Docker,
    private readonly settings: SwarmSettings,
    private readonly config: GatewayConfig["swarm"],
    private readonly log: Logger,
    /** Waiting for a task never outlives the manager's own start timeouts. */
    private readonly waitLimitMs: number,
    /** Encrypts the cluster records kept in the swarm; null keeps them in state_dir. */
    private readonly recordsKey: Buffer | null,
    /** Where image names without a host live; null: images are used as named. */
    private readonly registry: string | null,
    /** Given to every service created, as `--with-registry-auth` does; never logged. */
    private readonly registryAuth: RegistryAuth | null,
    /** Consecutive failures on every node after which a cluster cannot be placed (clusters.worker_start_failure_limit). */
    private readonly failureLimit: number,
  ) {
    this.avoidance = new NodeAvoidance(config.nodeBackoff);
  }

  /** Connects to the engine and checks that it is a swarm manager with the configured network. */
  static async create(config: GatewayConfig, log: Logger): Promise<SwarmBackend> {
    const docker = new Docker();
    const info = (await docker.info().catch((err: Error) => {
      throw new BackendError(`cannot reach the Docker engine: ${err.message}`);
    })) as { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean } };
    if (info.Swarm?.LocalNodeState !== "active" || !info.Swarm.ControlAvailable) {
      throw new BackendError("backend swarm needs a Docker swarm manager: run 'docker swarm init' or 'make up'");
    }
    const networkId = await findNetwork(docker, config.swarm.network);
    const settings: SwarmSettings = {
      gatewayId: config.swarm.gatewayId, image: config.swarm.image, networkId,
      schedulerConstraints: config.swarm.schedulerConstraints,
    };
    const waitLimitMs = 1000 * Math.max(config.clusters.startTimeout, config.clusters.workerStartTimeout);
    const registry = config.swarm.registry === null ? null : parseRegistry(config.swarm.registry);
    const auth = readRegistryAuth(config.swarm.registryAuthFile);
    log.info({ image: settings.image, registry, registryAuth: auth !== null }, "swarm images");
    return new SwarmBackend(docker, settings, config.swarm, log, waitLimitMs, readRecordsKey(config.swarm), registry, auth, config.clusters.workerStartFailureLimit);
  }

  recordStore(onBadRecord: (cluster: string, err: Error) => void): ClusterStore | undefined {
    return this.recordsKey ? swarmRecordStore(this.docker, this.settings.gatewayId, this.recordsKey, onBadRecord) : undefined;
  }

  /** Pins the cluster's image first: its workers, started later on any node, run the very same bits. */
  async startCluster(launch: SchedulerLaunch): Promise<BackendState> {
    await this.checkResourcesOffered(launch.workerResources);
    const image = await resolveImage(this.docker, launch.image ?? this.settings.image, this.registry, this.registryAuth);
    const secretIds = await this.createSecrets(launch);
    const service = await this.createService(schedulerServiceSpec(this.settings, launch, secretIds, image));
    try {
      await this.waitForTask(service.id, "scheduler");
    } catch (err) {
      throw new BackendError(explainStack((err as Error).message, image));
    }
    return { serviceId: service.id, image };
  }

  async stopCluster(launch: SchedulerLaunch): Promise<void> {
    await this.removeClusterObjects(launch.name);
    this.avoidance.forget(launch.name);
  }

  /** Everything labelled with the cluster goes, whatever state the gateway recorded. */
  private async removeClusterObjects(cluster: string): Promise<void> {
    const filters = { label: this.clusterFilter(cluster) };
    const services = await this.docker.listServices({ filters });
    await Promise.all(services.map((s) => ignoreMissing(this.docker.getService(s.ID).remove())));
    const secrets = await this.docker.listSecrets({ filters });
    // A secret can be removed only once no task uses it; tasks of removed services take a moment to go.
    for (const secret of secrets) await this.retry(() => ignoreMissing(this.docker.getSecret(secret.ID).remove()), 20);
  }

  /** Starts a worker on a node the cluster does not avoid; rejects with a NodeError when that node cannot run it. */
  async startWorker(launch: WorkerLaunch): Promise<BackendState> {
    const cluster = launch.cluster.name;
    const wanted = launch.cluster.workerResources;
    const start = async () => {
      const avoided = new Set(this.avoidance.avoided(cluster).map((a) => a.nodeId));
      const { own, held } = await this.workerUsage(cluster);
      const nodes = nodesOffering(await this.eligibleNodes(), wanted, held);
      const node = pickNode(nodes, own, this.config.workersPerNode, avoided);
      if (!node) {
        const why = Object.keys(wanted).length ? `, or offers ${describeResources(wanted)} that other workers do not hold` : "";
        throw new BackendError(`no eligible swarm node has room for another worker of this cluster${why}`);
      }
      const sized = sizeWorker(node, launch, this.config.reservedCores, this.config.reservedMemoryGiB);
      const secretIds = await this.secretIds(cluster);
      const spec = workerServiceSpec(this.settings, sized, secretIds, node.ID, clusterImage(launch, this.settings.image));
      return { node, serviceId: (await this.createService(spec)).id };
    };
    // Workers that hold generic resources are placed one at a time across clusters: the gateway counts the units.
    const { node, serviceId } = await this.serialized(Object.keys(wanted).length ? GENERIC_PLACEMENT : cluster, start);
    await this.waitForTask(serviceId, "worker", { cluster, node });
    this.avoidance.succeeded(cluster, node.ID);
    return { serviceId };
  }

  async stopWorker(launch: WorkerLaunch): Promise<void> {
    // Found by label, not by recorded id: a start cut short by a crash has no id recorded.
    const services = await this.docker.listServices({ filters: { label: [...this.clusterFilter(launch.cluster.name), `${LABEL.worker}=${launch.workerName}`] } });
    await Promise.all(services.map((s) => ignoreMissing(this.docker.getService(s.ID).remove())));
  }

  /** Services and secrets of this gateway whose cluster it no longer knows. */
  async cleanupOrphans(known: ReadonlySet<string>): Promise<void> {
    const filters = { label: [`${LABEL.gateway}=${this.settings.gatewayId}`] };
    const orphaned = new Set<string>();
    for (const s of await this.docker.listServices({ filters })) {
      const name = s.Spec?.Labels?.[LABEL.cluster];
      if (name && !known.has(name)) orphaned.add(name);
    }
    for (const s of await this.docker.listSecrets({ filters })) {
      const name = s.Spec?.Labels?.[LABEL.cluster];
      if (name && !known.has(name)) orphaned.add(name);
    }
    for (const name of orphaned) {
      this.log.info({ cluster: name }, "removing the objects of a cluster no gateway knows");
      await this.removeClusterObjects(name);
    }
  }

  async checkCluster(_launch: SchedulerLaunch, state: BackendState): Promise<string | null> {
    if (typeof state.serviceId !== "string") return null;
    const death = await this.serviceDeath(state.serviceId, "scheduler");
    return death === null ? null : explainStack(death, typeof state.image === "string" ? state.image : this.settings.image);
  }

  async checkWorker(_launch: WorkerLaunch, state: BackendState): Promise<string | null> {
    return typeof state.serviceId === "string" ? this.serviceDeath(state.serviceId, "worker") : null;
  }

  /** At most one worker per eligible node (or `workers_per_node`); fewer now on nodes avoided or not able to pull yet. */
  async capacity(launch: SchedulerLaunch): Promise<Capacity> {
    const avoided = this.avoidance.avoided(launch.name);
    const wanted = launch.workerResources;
    const generic = Object.keys(wanted).length > 0;
    const usage = avoided.length > 0 || generic ? await this.workerUsage(launch.name) : { own: new Map<string, number>(), held: new Map() };
    const { nodes, waiting } = await this.placeableNodes();
    const [offering, waitingOffering] = [nodesOffering(nodes, wanted), nodesOffering(waiting, wanted)];
    const capacity = placementCapacity([...offering, ...waitingOffering], this.config.workersPerNode, avoided, usage.own, waitingOffering, this.failureLimit);
    if (!generic) return capacity;
    const withWhy = { ...capacity, why: `${capacity.why} (eligible: the nodes offering ${describeResources(wanted)})` };
    const held = resourcesNow(offering, this.config.workersPerNode, wanted, usage.held, usage.own);
    if (!held || (capacity.now && capacity.now.workers <= held.workers)) return withWhy;
    return { ...withWhy, now: capacity.now ? { workers: held.workers, why: `${capacity.now.why}; ${held.why}` } : held };
  }

  /** A worker asking for more generic resources (GPUs...) than any node offers could never start: refused at once. */
  private async checkResourcesOffered(wanted: Record<string, number>): Promise<void> {
    if (Object.keys(wanted).length === 0) return;
    const { nodes, waiting } = await this.placeableNodes();
    const shortfall = resourcesShortfall([...nodes, ...waiting], wanted);
    if (shortfall) throw new BackendError(shortfall);
  }

  /** The default image, the registry it is resolved in, the network and the placement of schedulers. */
  schedulerFingerprint(): string {
    const { image, networkId, schedulerConstraints } = this.settings;
    return JSON.stringify({ image, registry: this.registry, networkId, schedulerConstraints });
  }

  async ping(): Promise<void> {
    await this.docker.ping().catch((err: Error) => {
      throw new BackendError(`cannot reach the Docker engine: ${err.message}`);
    });
  }

  async close(): Promise<void> {}

  /** The cluster's services that exist now: their logs are the engine's (logs.ts). */
  async logComponents(launch: SchedulerLaunch): Promise<string[]> {
    const services = await this.docker.listServices({ filters: { label: this.clusterFilter(launch.name) } });
    return services.map((s) => s.Spec?.Labels?.[LABEL.worker] ?? (s.Spec?.Labels?.[LABEL.role] === "scheduler" ? "scheduler" : "")).filter(Boolean);
  }

  async logs(launch: SchedulerLaunch, _state: BackendState, component: LogComponent, query: LogQuery): Promise<Readable | null> {
    const which = component.kind === "scheduler" ? `${LABEL.role}=scheduler` : `${LABEL.worker}=${component.name}`;
    const [service] = await this.docker.listServices({ filters: { label: [...this.clusterFilter(launch.name), which] } });
    return service ? serviceLogStream(this.docker, service.ID, query) : null;
  }

  async nodes(): Promise<NodeInfo[]> {
    return swarmNodes(this.docker, this.settings.gatewayId);
  }

  // ---- Helpers ----------------------------------------------------------------------------------

  /** Creates a service with the registry credentials, so that its nodes can pull a private image. */
  private createService(spec: object): Promise<Docker.Service> {
    return this.docker.createService(this.registryAuth ?? {}, spec as Docker.ServiceSpec);
  }

  private clusterFilter(cluster: string): string[] {
    return [`${LABEL.gateway}=${this.settings.gatewayId}`, `${LABEL.cluster}=${cluster}`];
  }

  private async eligibleNodes(): Promise<SwarmNode[]> {
    return (await this.placeableNodes()).nodes;
  }

  /**
   * Ready, active (and labelled) nodes that can pull the image. A loopback registry address means that each node
   * pulls from a task of the swarm's own registry running there (docker/registry.yml): a node that just joined
   * waits until one runs, instead of failing its first worker.
   */
  private async placeableNodes(): Promise<{ nodes: SwarmNode[]; waiting: SwarmNode[] }> {
    const nodes = eligibleNodes((await this.docker.listNodes()) as SwarmNode[], this.config.workerNodeLabel);
    if (!this.registry || !/^(127\.|localhost[:/]|\[::1\])/.test(this.registry)) return { nodes, waiting: [] };
    const services = await this.docker.listServices({ filters: { label: [REGISTRY_LABEL] } });
    if (services.length === 0) return { nodes, waiting: [] };
    const tasks = (await this.docker.listTasks({ filters: { service: services.map((sv) => sv.ID), "desired-state": ["running"] } })) as Task[];
    const serving = new Set(tasks.filter((t) => t.Status?.State === "running").map((t) => t.NodeID));
    return { nodes: nodes.filter((n) => serving.has(n.ID)), waiting: nodes.filter((n) => !serving.has(n.ID)) };
  }

  /**
   * This cluster's workers per node id, and the generic resources that the workers of every cluster (of every
   * gateway on the swarm) hold per node.
   */
  private async workerUsage(cluster: string): Promise<{ own: Map<string, number>; held: ResourcesHeld }> {
    const services = await this.docker.listServices({ filters: { label: [`${LABEL.role}=worker`] } });
    const own = new Map<string, number>();
    const workers: Array<{ node: string; label: string | undefined }> = [];
    for (const s of services) {
      const pin = s.Spec?.TaskTemplate && "Placement" in s.Spec.TaskTemplate
        ? (s.Spec.TaskTemplate as { Placement?: { Constraints?: string[] } }).Placement?.Constraints?.find((c) => c.startsWith("node.id=="))
        : undefined;
      if (!pin) continue;
      const node = pin.slice("node.id==".length);
      const labels = s.Spec?.Labels ?? {};
      workers.push({ node, label: labels[LABEL.resources] });
      if (labels[LABEL.gateway] === this.settings.gatewayId && labels[LABEL.cluster] === cluster) own.set(node, (own.get(node) ?? 0) + 1);
    }
    return { own, held: resourcesHeld(workers) };
  }

  private async createSecrets(launch: SchedulerLaunch): Promise<Record<SecretKind, string>> {
    const ids = {} as Record<SecretKind, string>;
    const specs = secretSpecs(this.settings, launch);
    for (const [i, kind] of SECRET_KINDS.entries()) {
      const created = (await this.docker.createSecret(specs[i]!)) as { id?: string; ID?: string };
      ids[kind] = created.id ?? created.ID ?? "";
    }
    return ids;
  }

  private async secretIds(cluster: string): Promise<Record<SecretKind, string>> {
    const secrets = await this.docker.listSecrets({ filters: { label: this.clusterFilter(cluster) } });
    const ids = {} as Record<SecretKind, string>;
    for (const kind of SECRET_KINDS) {
      const found = secrets.find((s) => s.Spec?.Name === secretName(cluster, kind));
      if (!found) throw new BackendError(`the cluster's ${kind} secret is missing`);
      ids[kind] = found.ID;
    }
    return ids;
  }

  /**
   * Resolves when a task of the service runs; rejects with Docker's own error when it cannot: a NodeError, and
   * the node avoided by the cluster, when the service is pinned to a node and the fault is that node's.
   */
  private async waitForTask(serviceId: string, what: string, pin?: { cluster: string; node: SwarmNode }): Promise<void> {
    let pendingErrorSince: number | null = null;
    const deadline = Date.now() + this.waitLimitMs;
    while (Date.now() < deadline) {
      const tasks = (await this.docker.listTasks({ filters: { service: [serviceId] } })) as Task[];
      const outcome = taskOutcome(tasks, pin !== undefined, pendingErrorSince === null ? 0 : Date.now() - pendingErrorSince);
      if (outcome.kind === "running") return;
      if (outcome.kind === "failed") {
        if (pin && outcome.fault === "node") throw this.avoidNode(pin.cluster, pin.node, outcome.reason);
        throw new BackendError(`${what} ${outcome.reason}`);
      }
      pendingErrorSince = outcome.pendingError ? (pendingErrorSince ?? Date.now()) : null;
      await sleep(TASK_POLL_MS);
    }
    throw new BackendError(`no ${what} task was running after ${this.waitLimitMs / 1000} s`);
  }

  /** Leaves the node out of the cluster's placements for its back-off; answers the error that says so. */
  private avoidNode(cluster: string, node: SwarmNode, reason: string): NodeError {
    const hostname = node.Description?.Hostname ?? node.ID;
    const seconds = this.avoidance.fail(cluster, node.ID, hostname, reason);
    this.log.warn({ cluster, node: hostname, reason, seconds }, "a worker could not start on a node; the cluster avoids it for a while");
    return new NodeError(hostname, reason, seconds);
  }

  /** Why a service is dead (removed, or no task wants to run any more), or null while it lives. */
  private async serviceDeath(serviceId: string, what: string): Promise<string | null> {
    let tasks: Task[];
    try {
      await this.docker.getService(serviceId).inspect();
      tasks = (await this.docker.listTasks({ filters: { service: [serviceId] } })) as Task[];
    } catch (err) {
      if (isNotFound(err)) return `the ${what} service was removed`;
      throw err;
    }
    if (tasks.some((t) => t.DesiredState === "running" && !ENDED_STATES.has(t.Status?.State ?? ""))) return null;
    if (tasks.some((t) => t.DesiredState === "running")) return null; // Swarm is restarting it.
    const last = [...tasks].sort((a, b) => (b.UpdatedAt ?? "").localeCompare(a.UpdatedAt ?? ""))[0];
    return `the ${what} task ended (${last?.Status?.State ?? "no task"}${last?.Status?.Err ? `: ${last.Status.Err}` : ""})`;
  }

  private serialized<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.placing.get(key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(fn);
    this.placing.set(key, next);
    void next.finally(() => {
      if (this.placing.get(key) === next) this.placing.delete(key);
    }).catch(() => undefined);
    return next;
  }

  private async retry(fn: () => Promise<void>, attempts: number): Promise<void> {
    for (let i = 1; ; i++) {
      try {
        return await fn();
      } catch (err) {
        if (i >= attempts) throw err;
        this.log.debug({ err: (err as Error).message }, "retrying a removal");
        await sleep(500);
      }
    }
  }
}

interface Task {
  DesiredState?: string;
  UpdatedAt?: string;
  NodeID?: string;
  Status?: { State?: string; Err?: string; Message?: string };
}

/** A scheduler's failure in the words of the stack check (backends/stack-preload.ts), when it is the check's. */
function explainStack(reason: string, image: string): string {
  const exit = /non-zero exit \((\d+)\)/.exec(reason);
  const stack = exit ? stackExitReason(Number(exit[1]), `the image ${image}`) : missingDaskReason(reason, `the image ${image}`);
  return stack ? `${stack} [${reason}]` : reason;
}

/** The image pinned when the scheduler started; clusters recorded before images were pinned use the default. */
function clusterImage(launch: WorkerLaunch, fallback: string): string {
  return typeof launch.clusterState.image === "string" ? launch.clusterState.image : fallback;
}

async function findNetwork(docker: Docker, name: string): Promise<string> {
  const networks = await docker.listNetworks({ filters: { name: [name] } });
  const exact = networks.filter((n) => n.Name === name && n.Scope === "swarm");
  if (exact.length !== 1) {
    throw new BackendError(`swarm.network: expected one swarm-scoped network named '${name}', found ${exact.length}; 'make up' creates it`);
  }
  return exact[0]!.Id;
}

async function ignoreMissing(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

function isNotFound(err: unknown): boolean {
  return (err as { statusCode?: number }).statusCode === 404;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function readRecordsKey(swarm: GatewayConfig["swarm"]): Buffer | null {
  if (!swarm.recordsKeyFile) return null;
  try {
    return recordsKey(readFileSync(swarm.recordsKeyFile, "utf8"), swarm.gatewayId);
  } catch (err) {
    throw new BackendError(`swarm.records_key_file ${swarm.recordsKeyFile}: ${(err as Error).message}`);
  }
}
