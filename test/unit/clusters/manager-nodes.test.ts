import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { BackendError, NodeError, type Backend } from "../../../src/backends/backend.js";
import { NodeAvoidance } from "../../../src/backends/swarm/node-avoidance.js";
import { pickNode, placementCapacity, type SwarmNode } from "../../../src/backends/swarm/placement.js";
import type { HeartbeatMessage } from "../../../src/clusters/heartbeat.js";
import { ClusterManager } from "../../../src/clusters/manager.js";
import { Job, publicStatus, type ClusterRecord } from "../../../src/clusters/model.js";
import { memoryStore } from "../../../src/clusters/store.js";
import { resolveConfig } from "../../../src/config/config.js";
import { loadSettings } from "../../../src/config/load.js";
import { createLogger } from "../../../src/logging.js";
import { loadCatalog } from "../../../src/options/catalog.js";

const config = resolveConfig(loadSettings(undefined, {}, new Map()), {});
const NO_IMAGE = "task rejected: No such image: dgw-sidecar:latest";

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (seconds: number) => void (t += seconds * 1000) };
}

/**
 * A swarm of four nodes in memory, placing as the swarm backend does (real avoidance and placement); a start on
 * a node in `bad` is rejected there. The Docker side is exercised by test/swarm.
 */
function fourNodeBackend(bad: ReadonlySet<string>, now: () => number) {
  const nodes: SwarmNode[] = ["a", "b", "c", "d"].map((id) => ({
    ID: `id-${id}`, Spec: { Availability: "active" }, Status: { State: "ready" }, Description: { Hostname: `host-${id}` },
  }));
  const avoidance = new NodeAvoidance(60, now);
  const placed = new Map<string, string>(); // worker → node id
  const used = () => {
    const counts = new Map<string, number>();
    for (const id of placed.values()) counts.set(id, (counts.get(id) ?? 0) + 1);
    return counts;
  };
  const backend: Backend = {
    kind: "fake",
    startCluster: async () => ({ id: "scheduler" }),
    stopCluster: async (l) => avoidance.forget(l.name),
    startWorker: async (l) => {
      const cluster = l.cluster.name;
      const node = pickNode(nodes, used(), 1, new Set(avoidance.avoided(cluster).map((a) => a.nodeId)));
      if (!node) throw new BackendError("no eligible swarm node has room for another worker of this cluster");
      const host = node.Description!.Hostname!;
      if (bad.has(host)) throw new NodeError(host, NO_IMAGE, avoidance.fail(cluster, node.ID, host, NO_IMAGE));
      placed.set(l.workerName, node.ID);
      avoidance.succeeded(cluster, node.ID);
      return { node: host };
    },
    stopWorker: async (l) => void placed.delete(l.workerName),
    checkCluster: async () => null,
    checkWorker: async () => null,
    capacity: async (l) => placementCapacity(nodes, 1, avoidance.avoided(l.name), used()),
    close: async () => {},
  };
  return { backend, placed };
}

function manager(backend: Backend, now: () => number) {
  return new ClusterManager({
    backend, store: memoryStore, log: createLogger("silent"), clusters: config.clusters, limits: config.limits,
    catalog: loadCatalog(config), apiUrl: "http://gateway/api", now,
  });
}

const alice = { name: "alice", admin: false };
const running = (c: ClusterRecord) => [...c.workers.values()].filter((w) => w.target === Job.RUNNING).map((w) => w.name);

/** A scheduler that asks for `count` workers and has every started worker connected; its API records messages. */
async function scheduler(m: ClusterManager, c: ClusterRecord, apiAddress: string, count: number) {
  const heartbeat = (): void => {
    const msg: HeartbeatMessage = {
      scheduler_address: "tls://scheduler:8786", dashboard_address: "", api_address: apiAddress,
      count, active_workers: running(c), closing_workers: [], closed_workers: [],
    };
    m.heartbeat(c, msg);
  };
  heartbeat();
  await m.idle();
  return heartbeat;
}

let server: Server | undefined;
afterEach(() => void server?.close());

/** A scheduler API that answers every message with 200 and keeps their bodies. */
async function schedulerApi(): Promise<{ address: string; messages: unknown[] }> {
  const messages: unknown[] = [];
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString()));
    req.on("end", () => {
      if (req.method === "POST") messages.push(JSON.parse(body));
      res.end("{}");
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return { address: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, messages };
}

describe("ClusterManager with a bad node", () => {
  it("keeps the cluster and its other workers through repeated failures of one node, naming it each time", async () => {
    const time = clock();
    const { backend, placed } = fourNodeBackend(new Set(["host-b"]), time.now);
    const m = manager(backend, time.now);
    const c = await m.create(alice, {});
    await m.idle();
    const heartbeat = await scheduler(m, c, "http://127.0.0.1:1", 4);
    for (const seconds of [61, 121]) {
      heartbeat(); // connects the workers started so far
      time.advance(seconds); // host-b's back-off expires: it is tried again
      heartbeat();
      await m.runChecks();
      await m.idle();
    }
    const failures = c.events.filter((e) => e.kind === "worker-failed").map((e) => e.message);
    expect(failures).toHaveLength(3);
    for (const [i, seconds] of [60, 120, 240].entries()) {
      expect(failures[i]).toMatch(new RegExp(`could not start on node host-b \\(${NO_IMAGE}\\); the cluster avoids that node for ${seconds} s`));
    }
    expect(publicStatus(c.status, c.target)).toBe("RUNNING");
    expect(c.workerFailures).toBe(0);
    expect(running(c)).toHaveLength(3);
    expect([...placed.values()].sort()).toEqual(["id-a", "id-c", "id-d"]);
    expect([...c.workers.values()].every((w) => w.status === Job.RUNNING)).toBe(true);
    await m.close();
  });

  it("asks the scheduler for every worker but warns about those that cannot be placed now", async () => {
    const time = clock();
    const { backend } = fourNodeBackend(new Set(["host-b"]), time.now);
    const m = manager(backend, time.now);
    const api = await schedulerApi();
    const c = await m.create(alice, {});
    await m.idle();
    await scheduler(m, c, api.address, 4);
    const answer = await m.scale(c, 4);
    expect(answer.ok).toBe(false);
    expect(answer.msg).toMatch(/^Only 3 of 4 workers can be placed now: .*host-b \(task rejected: No such image: dgw-sidecar:latest; avoided for another 60 s\)/);
    expect(api.messages).toEqual([{ op: "scale", count: 4 }]);
    await m.close();
  });

  it("fails the cluster when every eligible node is avoided and it has no worker, naming the nodes", async () => {
    const time = clock();
    const { backend } = fourNodeBackend(new Set(["host-a", "host-b", "host-c", "host-d"]), time.now);
    const m = manager(backend, time.now);
    const c = await m.create(alice, {});
    await m.idle();
    await scheduler(m, c, "http://127.0.0.1:1", 2);
    expect(publicStatus(c.status, c.target)).toBe("FAILED");
    expect(c.reason).toMatch(/^no eligible node can run a worker: /);
    for (const host of ["host-a", "host-b", "host-c", "host-d"]) expect(c.reason).toContain(`${host} (${NO_IMAGE}`);
    expect(c.workerFailures).toBe(0);
    await m.close();
  });

  it("still fails the cluster after clusters.worker_start_failure_limit failures that are not a node's", async () => {
    const time = clock();
    const { backend } = fourNodeBackend(new Set(), time.now);
    const m = manager({ ...backend, startWorker: async () => Promise.reject(new BackendError("worker task failed: task: non-zero exit (1)")) }, time.now);
    const c = await m.create(alice, {});
    await m.idle();
    await scheduler(m, c, "http://127.0.0.1:1", 1);
    expect(publicStatus(c.status, c.target)).toBe("FAILED");
    expect(c.reason).toBe(`${config.clusters.workerStartFailureLimit} consecutive workers failed to start`);
    expect(c.events.filter((e) => e.kind === "worker-failed")).toHaveLength(config.clusters.workerStartFailureLimit);
    await m.close();
  });
});
