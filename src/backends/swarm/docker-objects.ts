/**
 * Names, labels and specs of the Docker objects of one cluster. Pure functions, so the exact specs
 * (secrets as 0400 files, dnsrr endpoints, bounded restarts, reservations) are testable without Docker.
 */
import type { SchedulerLaunch, WorkerLaunch } from "../backend.js";
import { claimPreloadArgs } from "../pool-preload.js";
import { mountEnvName, mountsFor, type MountDefinition } from "../../options/mounts.js";
import { daskResources } from "../resources.js";
import { schedulerPreloadArgs } from "../stack-preload.js";
import { resourcesLabel } from "./placement.js";

export const LABEL = {
  gateway: "dask-gateway.gateway",
  cluster: "dask-gateway.cluster",
  user: "dask-gateway.user",
  role: "dask-gateway.role",
  worker: "dask-gateway.worker",
  /** The generic resources (GPU...) a worker holds on its node, as `GPU=1`: the gateway's own accounting. */
  resources: "dask-gateway.resources",
} as const;

export const SCHEDULER_PORT = 8786;
export const DASHBOARD_PORT = 8787;
export const API_PORT = 8788;
/** The image's unprivileged user (uid:gid); secrets are readable by it alone. */
export const RUN_AS = { uid: "1000", gid: "1000" };
const SECRETS_DIR = "/run/secrets";

export interface SwarmSettings {
  gatewayId: string;
  image: string;
  networkId: string;
  schedulerConstraints: string[];
}

export type SecretKind = "cert" | "key" | "token";
export const SECRET_KINDS: readonly SecretKind[] = ["cert", "key", "token"];
const SECRET_FILE: Record<SecretKind, string> = { cert: "dask.crt", key: "dask.pem", token: "dask-token" };

export const schedulerServiceName = (cluster: string) => `dgw-${cluster}`;
export const workerServiceName = (cluster: string, worker: string) => `dgw-${cluster}-${worker.slice(0, 12)}`;
export const secretName = (cluster: string, kind: SecretKind) => `dgw-${cluster}-${kind}`;

/** Labels every object of a cluster carries, so that it can be found, adopted and cleaned up. */
export function clusterLabels(gatewayId: string, cluster: string, user: string): Record<string, string> {
  return { [LABEL.gateway]: gatewayId, [LABEL.cluster]: cluster, [LABEL.user]: user };
}

/** The value and label set of each of a cluster's three secrets. */
export function secretSpecs(settings: SwarmSettings, launch: SchedulerLaunch) {
  const values: Record<SecretKind, string> = { cert: launch.tlsCert, key: launch.tlsKey, token: launch.token };
  return SECRET_KINDS.map((kind) => ({
    Name: secretName(launch.name, kind),
    Labels: clusterLabels(settings.gatewayId, launch.name, launch.user),
    Data: Buffer.from(values[kind]).toString("base64"),
  }));
}

/** Secret references of a service: files in /run/secrets owned by the run-as user, mode 0400. */
function secretRefs(secretIds: Record<SecretKind, string>, cluster: string) {
  return SECRET_KINDS.map((kind) => ({
    SecretID: secretIds[kind],
    SecretName: secretName(cluster, kind),
    File: { Name: SECRET_FILE[kind], UID: RUN_AS.uid, GID: RUN_AS.gid, Mode: 0o400 },
  }));
}

const secretPath = (kind: SecretKind) => `${SECRETS_DIR}/${SECRET_FILE[kind]}`;

function commonEnv(launch: SchedulerLaunch, mounts: readonly MountDefinition[]): string[] {
  const env: Record<string, string> = {
    ...launch.environment,
    ...Object.fromEntries(mounts.map((m) => [mountEnvName(m), m.target])),
    DASK_GATEWAY_API_URL: launch.apiUrl,
    // A value with a slash is read as a file by the preload: the token never sits in an inspectable env.
    DASK_GATEWAY_API_TOKEN: secretPath("token"),
    DASK_GATEWAY_CLUSTER_NAME: launch.name,
    DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION: "True",
    DASK_DISTRIBUTED__COMM__TLS__CA_FILE: secretPath("cert"),
  };
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

/** Docker's mount specs; volumes carry the gateway's label, so an operator can tell them apart. */
export function dockerMounts(gatewayId: string, mounts: readonly MountDefinition[]) {
  return mounts.map((m) => ({
    Type: m.type === "bind" ? "bind" : "volume",
    Source: m.source,
    Target: m.target,
    ReadOnly: m.read_only === true,
    ...(m.type === "bind" ? {} : {
      VolumeOptions: {
        Labels: { [LABEL.gateway]: gatewayId },
        ...(m.driver || m.driver_opts ? { DriverConfig: { Name: m.driver ?? "local", Options: m.driver_opts ?? {} } } : {}),
      },
    }),
  }));
}

/** One task, found by DNS round robin (no virtual IP: that needs IPVS and drops idle connections). */
const singleTask = { Mode: { Replicated: { Replicas: 1 } }, EndpointSpec: { Mode: "dnsrr" } };

const BOUNDED_RESTARTS = { Condition: "on-failure", MaxAttempts: 2, Delay: 2_000_000_000 };

/** Reservations matching what the process is told it has, bounded restarts, placement and network. */
function taskRules(settings: SwarmSettings, cores: number, memoryBytes: number, constraints: string[], restart: object = BOUNDED_RESTARTS) {
  return {
    Resources: { Reservations: { NanoCPUs: Math.round(cores * 1e9), MemoryBytes: memoryBytes }, Limits: { MemoryBytes: memoryBytes } },
    RestartPolicy: restart,
    Placement: { Constraints: constraints },
    Networks: [{ Target: settings.networkId }],
  };
}

/** The scheduler service: dnsrr endpoint (no IPVS needed), bounded restarts, optional placement. */
export function schedulerServiceSpec(settings: SwarmSettings, launch: SchedulerLaunch, secretIds: Record<SecretKind, string>, image: string) {
  const name = schedulerServiceName(launch.name);
  const mounts = mountsFor(launch.mounts, launch.user, "scheduler");
  return {
    Name: name,
    Labels: { ...clusterLabels(settings.gatewayId, launch.name, launch.user), [LABEL.role]: "scheduler" },
    TaskTemplate: {
      ContainerSpec: {
        Image: image,
        Hostname: name,
        User: `${RUN_AS.uid}:${RUN_AS.gid}`,
        Init: true,
        Command: [
          "dask", "scheduler", "--protocol", "tls", "--port", String(SCHEDULER_PORT), "--host", name,
          "--dashboard-address", `:${DASHBOARD_PORT}`,
          ...schedulerPreloadArgs(claimPreloadArgs(launch)),
          "--dg-api-address", `0.0.0.0:${API_PORT}`,
          "--dg-heartbeat-period", String(launch.heartbeatPeriod),
          "--dg-adaptive-period", String(launch.adaptivePeriod),
          "--dg-idle-timeout", String(launch.idleTimeout),
        ],
        Env: [
          ...commonEnv(launch, mounts),
          `DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__CERT=${secretPath("cert")}`,
          `DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__KEY=${secretPath("key")}`,
        ],
        Secrets: secretRefs(secretIds, launch.name),
        Labels: clusterLabels(settings.gatewayId, launch.name, launch.user),
        Mounts: dockerMounts(settings.gatewayId, mounts),
      },
      // Never restarted: a new scheduler would have lost every task and answer at a new address. The gateway
      // fails the cluster instead, with the task's own error as the reason.
      ...taskRules(settings, launch.schedulerCores, launch.schedulerMemoryBytes, settings.schedulerConstraints, { Condition: "none" }),
    },
    ...singleTask,
  };
}

/**
 * One worker service, pinned to one node by id, with reservations matching what it advertises to Dask. Generic
 * resources (GPUs) are not Swarm reservations but a label the gateway counts (placement.ts): Swarm's constraint
 * enforcer rejects a running task that holds a node's last unit of a generic resource whenever that node is updated
 * (moby/swarmkit's HasResource check), which would kill GPU workers at the next `docker node update`.
 */
export function workerServiceSpec(settings: SwarmSettings, launch: WorkerLaunch, secretIds: Record<SecretKind, string>, nodeId: string, image: string) {
  const c = launch.cluster;
  const mounts = mountsFor(c.mounts, c.user, "worker");
  return {
    Name: workerServiceName(c.name, launch.workerName),
    Labels: {
      ...clusterLabels(settings.gatewayId, c.name, c.user), [LABEL.role]: "worker", [LABEL.worker]: launch.workerName,
      ...(Object.keys(c.workerResources).length ? { [LABEL.resources]: resourcesLabel(c.workerResources) } : {}),
    },
    TaskTemplate: {
      ContainerSpec: {
        Image: image,
        User: `${RUN_AS.uid}:${RUN_AS.gid}`,
        Init: true,
        Command: [
          "dask", "worker", launch.schedulerAddress,
          "--name", launch.workerName,
          "--nthreads", String(launch.workerThreads),
          "--memory-limit", String(launch.workerMemoryBytes),
          "--dashboard-address", `:${DASHBOARD_PORT}`,
          "--resources", daskResources(launch),
        ],
        Env: [
          ...commonEnv(c, mounts),
          `DASK_DISTRIBUTED__COMM__TLS__WORKER__CERT=${secretPath("cert")}`,
          `DASK_DISTRIBUTED__COMM__TLS__WORKER__KEY=${secretPath("key")}`,
        ],
        Secrets: secretRefs(secretIds, c.name),
        Labels: clusterLabels(settings.gatewayId, c.name, c.user),
        Mounts: dockerMounts(settings.gatewayId, mounts),
      },
      ...taskRules(settings, launch.workerCores, launch.workerMemoryBytes, [`node.id==${nodeId}`]),
    },
    ...singleTask,
  };
}
