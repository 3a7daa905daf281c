import { describe, expect, it } from "vitest";
import { applyHeartbeat, decideScale, workerStartAllowance, type HeartbeatMessage } from "../../../src/clusters/heartbeat.js";
import { Job, clusterToWire, publicStatus, type ClusterRecord, type WorkerRecord } from "../../../src/clusters/model.js";

function cluster(overrides: Partial<ClusterRecord> = {}): ClusterRecord {
  return {
    name: "c1", user: "alice", token: "t", tlsCert: "CERT", tlsKey: "KEY", options: {},
    config: { workerCores: 1, workerThreads: 1, workerMemoryBytes: 1, schedulerCores: 1, schedulerMemoryBytes: 1, environment: {}, idleTimeout: 0, orphanTimeout: 0, maxWorkers: null, image: null },
    status: Job.SUBMITTED, target: Job.RUNNING, startTime: 1, stopTime: null, count: 0,
    schedulerAddress: "", dashboardAddress: "", apiAddress: "", lastHeartbeat: null, workerFailures: 0,
    reason: null, events: [], state: {}, workers: new Map(), clients: 0, lastClientSeen: 0, ...overrides,
  };
}

function worker(name: string, status: Job, createdAt = 0): WorkerRecord {
  return { name, status, target: Job.RUNNING, closeExpected: false, createdAt, submittedAt: null, state: {} };
}

const msg = (m: Partial<HeartbeatMessage>): HeartbeatMessage => ({
  scheduler_address: "tls://127.0.0.1:1", dashboard_address: "http://127.0.0.1:2", api_address: "http://127.0.0.1:3",
  count: 0, active_workers: [], closing_workers: [], closed_workers: [], ...m,
});

describe("applyHeartbeat", () => {
  it("records addresses only before the cluster runs", () => {
    const c = cluster();
    expect(applyHeartbeat(c, msg({}), null, 5).clusterChanged).toBe(true);
    expect(c.schedulerAddress).toBe("tls://127.0.0.1:1");
    c.status = Job.RUNNING;
    applyHeartbeat(c, msg({ scheduler_address: "tls://elsewhere:9" }), null, 6);
    expect(c.schedulerAddress).toBe("tls://127.0.0.1:1");
    expect(c.lastHeartbeat).toBe(6);
  });

  it("clamps the count to the worker limit", () => {
    const c = cluster({ status: Job.RUNNING });
    applyHeartbeat(c, msg({ count: 10 }), 2, 0);
    expect(c.count).toBe(2);
  });

  it("marks connected workers running and resets the failure and timeout counters", () => {
    const c = cluster({ status: Job.RUNNING, count: 1, workerFailures: 2, workerTimeouts: 3 });
    c.workers.set("w1", worker("w1", Job.SUBMITTED));
    const fx = applyHeartbeat(c, msg({ count: 1, active_workers: ["w1"] }), null, 0);
    expect(c.workers.get("w1")!.status).toBe(Job.RUNNING);
    expect(fx.workerConnected).toBe(true);
    expect(c.workerFailures).toBe(0);
    expect(c.workerTimeouts).toBe(0);
  });

  it("closed workers stop when retired and fail when they vanished", () => {
    const c = cluster({ status: Job.RUNNING, count: 0 });
    c.workers.set("a", worker("a", Job.RUNNING));
    c.workers.set("b", worker("b", Job.RUNNING));
    applyHeartbeat(c, msg({ closing_workers: ["a"], active_workers: ["b"], count: 1 }), null, 0);
    applyHeartbeat(c, msg({ closed_workers: ["a", "b"], count: 1 }), null, 0);
    expect(c.workers.get("a")!.target).toBe(Job.STOPPED);
    expect(c.workers.get("b")!.target).toBe(Job.FAILED);
  });

  it("stops only pending workers beyond the count, newest states first", () => {
    const c = cluster({ status: Job.RUNNING });
    c.workers.set("run", worker("run", Job.RUNNING));
    c.workers.set("sub", worker("sub", Job.SUBMITTED, 1));
    c.workers.set("new", worker("new", Job.CREATED, 2));
    const fx = applyHeartbeat(c, msg({ count: 2, active_workers: ["run"] }), null, 0);
    expect(fx.workersChanged.map((w) => w.name)).toEqual(["new"]);
    expect(c.workers.get("sub")!.target).toBe(Job.RUNNING);
  });

  it("ignores names it does not know, of any type", () => {
    const c = cluster({ status: Job.RUNNING });
    expect(() => applyHeartbeat(c, msg({ active_workers: [1, null, { x: 1 }], closed_workers: ["zz"] }), null, 0)).not.toThrow();
  });
});

describe("decideScale", () => {
  it("fails after the failure limit, else starts what is missing within capacity", () => {
    expect(decideScale(cluster({ workerFailures: 3 }), 3, null).kind).toBe("fail");
    const c = cluster({ count: 3 });
    c.workers.set("a", worker("a", Job.RUNNING));
    expect(decideScale(c, 3, null)).toEqual({ kind: "start", count: 2 });
    expect(decideScale(c, 3, { workers: 2, why: "" })).toEqual({ kind: "start", count: 1 });
    expect(decideScale(c, 3, { workers: 1, why: "" })).toEqual({ kind: "none" });
  });

  it("wants no more than can be placed now while places are avoided", () => {
    const c = cluster({ count: 4 });
    c.workers.set("a", worker("a", Job.RUNNING));
    expect(decideScale(c, 3, { workers: 4, why: "", now: { workers: 3, why: "avoids host-b" } })).toEqual({ kind: "start", count: 2 });
    expect(decideScale(c, 3, { workers: 4, why: "", now: { workers: 0, why: "avoids every node" } })).toEqual({ kind: "none" });
  });

  it("fails only when it wants workers, has none, and every eligible place failed it", () => {
    const why = "avoids host-a (No such image), host-b (node down)";
    const capacity = { workers: 2, why: "", now: { workers: 0, why }, unplaceable: why };
    // Places that cannot take a worker yet but did not fail it (a node waiting to pull) are waited for.
    expect(decideScale(cluster({ count: 1 }), 3, { workers: 2, why: "", now: { workers: 0, why } })).toEqual({ kind: "none" });
    expect(decideScale(cluster({ count: 1 }), 3, capacity)).toEqual({ kind: "fail", reason: "no eligible node can run a worker: avoids host-a (No such image), host-b (node down)" });
    expect(decideScale(cluster({ count: 0 }), 3, capacity)).toEqual({ kind: "none" });
    const starting = cluster({ count: 1 });
    starting.workers.set("a", worker("a", Job.CREATED));
    expect(decideScale(starting, 3, capacity)).toEqual({ kind: "none" });
    expect(decideScale(cluster({ count: 1 }), 3, { workers: 0, why: "no eligible node" })).toEqual({ kind: "none" });
  });
});

describe("public status and wire form", () => {
  it("maps (status, target) as the reference does", () => {
    expect(publicStatus(Job.CREATED, Job.RUNNING)).toBe("PENDING");
    expect(publicStatus(Job.SUBMITTED, Job.RUNNING)).toBe("PENDING");
    expect(publicStatus(Job.RUNNING, Job.RUNNING)).toBe("RUNNING");
    expect(publicStatus(Job.RUNNING, Job.STOPPED)).toBe("STOPPING");
    expect(publicStatus(Job.CLOSING, Job.FAILED)).toBe("STOPPING");
    expect(publicStatus(Job.STOPPED, Job.STOPPED)).toBe("STOPPED");
    expect(publicStatus(Job.FAILED, Job.FAILED)).toBe("FAILED");
  });

  it("has exactly eight keys and credentials only while running", () => {
    const pending = clusterToWire(cluster());
    expect(Object.keys(pending).sort()).toEqual(["dashboard_route", "name", "options", "start_time", "status", "stop_time", "tls_cert", "tls_key"]);
    expect(pending.tls_key).toBeNull();
    const running = clusterToWire(cluster({ status: Job.RUNNING, dashboardAddress: "http://x:1" }));
    expect(running.tls_key).toBe("KEY");
    expect(running.dashboard_route).toBe("/clusters/c1/status");
    expect(clusterToWire(cluster({ status: Job.RUNNING })).dashboard_route).toBeNull();
  });
});

describe("workerStartAllowance", () => {
  it("doubles for each worker that did not connect in time, up to 8 times, and starts again once one connects", () => {
    const c = cluster({ status: Job.RUNNING, count: 1 });
    expect([0, 1, 2, 3, 4, 9].map((n) => workerStartAllowance({ ...c, workerTimeouts: n }, 60))).toEqual([60, 120, 240, 480, 480, 480]);
    expect(workerStartAllowance(c, 60)).toBe(60); // records written before the field existed
  });
});
