import { describe, expect, it } from "vitest";
import type { SchedulerLaunch, WorkerLaunch } from "../../../src/backends/backend.js";
import { POOL_CLAIM_PRELOAD } from "../../../src/backends/pool-preload.js";
import { schedulerServiceSpec, secretSpecs, workerServiceSpec } from "../../../src/backends/swarm/docker-objects.js";
import type { AvoidedNode } from "../../../src/backends/swarm/node-avoidance.js";
import { eligibleNodes, pickNode, placementCapacity, sizeWorker, type SwarmNode } from "../../../src/backends/swarm/placement.js";

const settings = { gatewayId: "g1", image: "img", networkId: "net", schedulerConstraints: ["node.role==manager"] };
const launch: SchedulerLaunch = {
  name: "c1", user: "alice", token: "TOKEN-SECRET", tlsCert: "CERT", tlsKey: "KEY-SECRET", apiUrl: "http://gateway:8000/api",
  heartbeatPeriod: 15, adaptivePeriod: 3, idleTimeout: 0, schedulerCores: 1, schedulerMemoryBytes: 2 ** 30, environment: { A: "b" }, image: null, mounts: [], workerResources: {},
};
const ids = { cert: "i1", key: "i2", token: "i3" };
const node = (id: string, state = "ready", availability = "active", labels: Record<string, string> = {}, cpus = 8, mem = 16 * 2 ** 30): SwarmNode => ({
  ID: id, Spec: { Availability: availability, Labels: labels }, Status: { State: state },
  Description: { Resources: { NanoCPUs: cpus * 1e9, MemoryBytes: mem } },
});

describe("swarm object specs", () => {
  it("keeps secrets out of everything inspectable", () => {
    const spec = schedulerServiceSpec(settings, launch, ids, "reg:5000/img@sha256:" + "a".repeat(64));
    const text = JSON.stringify(spec);
    expect(text).not.toContain("TOKEN-SECRET");
    expect(text).not.toContain("KEY-SECRET");
    expect(spec.TaskTemplate.ContainerSpec.Env).toContain("DASK_GATEWAY_API_TOKEN=/run/secrets/dask-token");
    expect(spec.TaskTemplate.ContainerSpec.Secrets.every((s) => s.File.Mode === 0o400 && s.File.UID === "1000")).toBe(true);
    expect(spec.TaskTemplate.ContainerSpec.User).toBe("1000:1000");
    expect(spec.TaskTemplate.ContainerSpec.Image).toBe("reg:5000/img@sha256:" + "a".repeat(64));
    expect(spec.EndpointSpec.Mode).toBe("dnsrr");
    expect(spec.TaskTemplate.RestartPolicy).toEqual({ Condition: "none" });
    expect(spec.Labels).toMatchObject({ "dask-gateway.gateway": "g1", "dask-gateway.cluster": "c1", "dask-gateway.role": "scheduler" });
    expect(secretSpecs(settings, launch).map((s) => Buffer.from(s.Data, "base64").toString())).toEqual(["CERT", "KEY-SECRET", "TOKEN-SECRET"]);
  });

  it("starts a warm scheduler of the pool with idle timeout 0 and the claim preload after the gateway's", () => {
    const cold = schedulerServiceSpec(settings, launch, ids, "img").TaskTemplate.ContainerSpec.Command;
    expect(cold).not.toContain(POOL_CLAIM_PRELOAD);
    const warm = schedulerServiceSpec(settings, { ...launch, user: "", warm: true }, ids, "img").TaskTemplate.ContainerSpec.Command;
    const at = warm.indexOf("dask_gateway.scheduler_preload");
    expect(warm.slice(at + 1, at + 3)).toEqual(["--preload", POOL_CLAIM_PRELOAD]);
    expect(warm[warm.indexOf("--dg-idle-timeout") + 1]).toBe("0");
  });

  it("pins a worker to its node with matching reservations", () => {
    const w: WorkerLaunch = { cluster: launch, clusterState: {}, workerName: "w".repeat(32), schedulerAddress: "tls://10.0.0.2:8786", workerCores: 2, workerThreads: 2, workerMemoryBytes: 4 * 2 ** 30 };
    const spec = workerServiceSpec(settings, w, ids, "node-a", "reg:5000/img@sha256:" + "b".repeat(64));
    expect(spec.TaskTemplate.Placement.Constraints).toEqual(["node.id==node-a"]);
    expect(spec.TaskTemplate.Resources.Reservations).toEqual({ NanoCPUs: 2e9, MemoryBytes: 4 * 2 ** 30 });
    expect(spec.TaskTemplate.ContainerSpec.Command).toEqual(expect.arrayContaining(["--name", w.workerName, "--nthreads", "2"]));
  });
});

describe("placement", () => {
  const nodes = [node("a"), node("b", "down"), node("c", "ready", "drain"), node("d", "ready", "active", { gpu: "yes" })];

  it("uses only ready, active (and labelled) nodes", () => {
    expect(eligibleNodes(nodes, null).map((n) => n.ID)).toEqual(["a", "d"]);
    expect(eligibleNodes(nodes, "gpu").map((n) => n.ID)).toEqual(["d"]);
    expect(eligibleNodes(nodes, "gpu=no")).toEqual([]);
  });

  it("picks the least used node below the per-node limit", () => {
    const eligible = eligibleNodes(nodes, null);
    expect(pickNode(eligible, new Map([["a", 1]]), 1)?.ID).toBe("d");
    expect(pickNode(eligible, new Map([["a", 1], ["d", 1]]), 1)).toBeNull();
    expect(pickNode(eligible, new Map([["a", 1], ["d", 1]]), 2)?.ID).toBe("a");
  });

  it("never picks a node the cluster avoids", () => {
    const eligible = eligibleNodes(nodes, null);
    expect(pickNode(eligible, new Map(), 1, new Set(["a"]))?.ID).toBe("d");
    expect(pickNode(eligible, new Map([["d", 1]]), 1, new Set(["a"]))).toBeNull();
    expect(pickNode(eligible, new Map([["d", 1]]), 2, new Set(["a"]))?.ID).toBe("d");
  });

  it("keeps the capacity of every eligible node, and says what can be placed now and why while nodes are avoided", () => {
    const four = [node("a"), node("b"), node("c"), node("d")];
    const avoidedB: AvoidedNode = { nodeId: "b", hostname: "host-b", reason: "task rejected: No such image: img", secondsLeft: 42, failures: 1 };
    expect(placementCapacity(four, 2, [], new Map())).toEqual({
      workers: 8, why: "the swarm has 4 eligible nodes and places at most 2 workers of a cluster on each",
    });
    const cap = placementCapacity(four, 2, [avoidedB], new Map([["b", 1]]));
    expect(cap.workers).toBe(8);
    expect(cap.now?.workers).toBe(7); // the worker already on b stays
    expect(cap.now?.why).toBe("the cluster avoids 1 node where its workers failed to start: host-b (task rejected: No such image: img; avoided for another 42 s)");
    const all = four.map((n): AvoidedNode => ({ ...avoidedB, nodeId: n.ID, hostname: `host-${n.ID}` }));
    expect(placementCapacity(four, 1, all, new Map()).now?.workers).toBe(0);
    expect(placementCapacity(four, 1, all, new Map()).unplaceable).toMatch(/^the cluster avoids 4 nodes/);
    // With a failure limit, every node must have failed the cluster that many times in a row.
    expect(placementCapacity(four, 1, all, new Map(), [], 3).unplaceable).toBeUndefined();
    const thrice = all.map((a) => ({ ...a, failures: 3 }));
    expect(placementCapacity(four, 1, thrice, new Map(), [], 3).unplaceable).toMatch(/^the cluster avoids 4 nodes/);
    expect(cap.unplaceable).toBeUndefined();
    // A node that cannot pull yet counts in the clamp, not now, and never makes the cluster unplaceable.
    const waiting = placementCapacity(four, 1, [avoidedB], new Map(), [node("c"), node("b")]);
    expect(waiting).toMatchObject({ workers: 4, now: { workers: 2 } });
    expect(waiting.now?.why).toMatch(/; c cannot pull images yet \(no task of the swarm's registry runs there yet\)$/);
    const onlyWaiting = placementCapacity([node("a")], 1, [], new Map(), [node("a")]);
    expect(onlyWaiting).toMatchObject({ workers: 1, now: { workers: 0 } });
    expect(onlyWaiting.unplaceable).toBeUndefined();
    // A node that is no longer eligible changes nothing about what is avoided.
    expect(placementCapacity([node("a")], 1, [avoidedB], new Map()).now).toBeUndefined();
  });

  it("never sizes a worker beyond its node minus the reserve", () => {
    const w: WorkerLaunch = { cluster: launch, clusterState: {}, workerName: "w", schedulerAddress: "", workerCores: 16, workerThreads: 16, workerMemoryBytes: 64 * 2 ** 30 };
    const sized = sizeWorker(node("a", "ready", "active", {}, 4, 8 * 2 ** 30), w, 0.5, 1);
    expect(sized.workerThreads).toBe(3);
    expect(sized.workerMemoryBytes).toBe(7 * 2 ** 30);
  });
});
