import { EventEmitter } from "node:events";
import type { ServerResponse } from "node:http";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { ClusterManager } from "../../../src/clusters/manager.js";
import { Job, type ClusterRecord, type ClusterStatus } from "../../../src/clusters/model.js";
import { LiveHub } from "../../../src/web/live.js";
import { UsageMeter } from "../../../src/web/usage.js";
import { uiCluster } from "../../../src/web/view.js";
import { createLogger } from "../../../src/logging.js";

const silent = createLogger("silent", "json");

function record(name: string, user: string, workers = 0): ClusterRecord {
  const c = {
    name, user, token: "secret-token", tlsCert: "CERT", tlsKey: "SECRET KEY", options: { worker_cores: 2 },
    config: {
      workerCores: 2, workerThreads: 2, workerMemoryBytes: 4 * 1024 ** 3, schedulerCores: 1, schedulerMemoryBytes: 1024 ** 3,
      environment: {}, idleTimeout: 0, orphanTimeout: 0, maxWorkers: null, image: null,
    },
    status: Job.RUNNING, target: Job.RUNNING, startTime: 1_000, stopTime: null, count: workers, schedulerAddress: "tls://10.0.0.1:8786",
    dashboardAddress: "http://10.0.0.1:8787", apiAddress: "http://10.0.0.1:8788", lastHeartbeat: 1_000, workerFailures: 0, reason: null,
    events: [], state: {}, workers: new Map(), clients: 0, lastClientSeen: 1_000,
  } satisfies ClusterRecord;
  for (let i = 0; i < workers; i++) {
    c.workers.set(`w${i}`, { name: `w${i}`, status: Job.RUNNING, target: Job.RUNNING, closeExpected: false, createdAt: 0, submittedAt: 0, state: {} });
  }
  return c;
}

function fakeManager(clusters: ClusterRecord[]): ClusterManager {
  return {
    list: (user: string | null, _statuses?: readonly ClusterStatus[]) => clusters.filter((c) => user === null || c.user === user),
  } as unknown as ClusterManager;
}

/** A response that records what is written and can refuse more (backpressure). */
class FakeResponse extends EventEmitter {
  written: string[] = [];
  full = false;
  writeHead() {
    return this;
  }
  write(text: string): boolean {
    this.written.push(text);
    return !this.full;
  }
  end() {
    this.emit("close");
  }
}

describe("the page's view of a cluster", () => {
  it("counts connected workers' cores and memory with the scheduler's, and holds no secret or internal address", () => {
    const view = uiCluster(record("c1", "alice", 2));
    expect(view).toMatchObject({ status: "RUNNING", workers: { connected: 2, starting: 0, requested: 2 }, cores: 5, memoryBytes: 9 * 1024 ** 3, dashboard: true });
    const text = JSON.stringify(view);
    for (const secret of ["secret-token", "SECRET KEY", "CERT", "10.0.0.1"]) expect(text).not.toContain(secret);
  });
});

describe("LiveHub", () => {
  it("sends each subscriber its own clusters at once and on change, nothing while blocked, the latest on drain, and forgets it on close", async () => {
    const clusters = [record("a1", "alice"), record("b1", "bob")];
    const hub = new LiveHub(fakeManager(clusters), { tickMs: 10 });
    const alice = new FakeResponse();
    const admin = new FakeResponse();
    hub.subscribe(alice as unknown as ServerResponse, "alice", "alice");
    hub.subscribe(admin as unknown as ServerResponse, "root", null);
    const events = (r: FakeResponse) => r.written.filter((w) => w.startsWith("event: clusters")).map((w) => JSON.parse(w.split("data: ")[1]!).clusters.map((c: { name: string }) => c.name));
    expect(events(alice)).toEqual([["a1"]]);
    expect(events(admin)).toEqual([["a1", "b1"]]);
    await new Promise((r) => setTimeout(r, 30));
    expect(events(alice)).toHaveLength(1); // nothing changed, nothing sent
    alice.full = true;
    clusters[0]!.count = 3;
    await new Promise((r) => setTimeout(r, 30));
    expect(events(alice)).toHaveLength(2); // written once, then blocked
    clusters[0]!.count = 4;
    clusters[0]!.count = 5;
    await new Promise((r) => setTimeout(r, 30));
    expect(events(alice)).toHaveLength(2);
    alice.full = false;
    alice.emit("drain");
    expect(events(alice)).toHaveLength(3);
    expect(alice.written.at(-1)).toContain('"requested":5');
    alice.end();
    admin.end();
    expect(alice.listenerCount("drain") + alice.listenerCount("close") + admin.listenerCount("close")).toBe(0);
    expect(hub.refusal("alice")).toBeNull();
    hub.close();
  });

  it("refuses subscribers beyond its limits", () => {
    const hub = new LiveHub(fakeManager([]), { maxSubscribers: 2, maxPerUser: 1 });
    hub.subscribe(new FakeResponse() as unknown as ServerResponse, "alice", "alice");
    expect(hub.refusal("alice")).toMatch(/alice already has 1/);
    expect(hub.refusal("bob")).toBeNull();
    hub.subscribe(new FakeResponse() as unknown as ServerResponse, "bob", "bob");
    expect(hub.refusal("carol")).toMatch(/already serves 2/);
    hub.close();
  });
});

describe("UsageMeter", () => {
  it("adds cluster-seconds and core-seconds per user per hour, keeps them across restarts, and reports a period", async () => {
    let now = Date.parse("2026-12-01T10:59:30Z");
    const file = join(mkdtempSync(join(tmpdir(), "dgw-usage-")), "usage.json");
    const clusters = [record("a1", "alice", 2), record("a2", "alice"), record("b1", "bob", 1)];
    const meter = new UsageMeter({ file, manager: fakeManager(clusters), keepDays: 90, log: silent, periodMs: 30_000, now: () => now });
    meter.start();
    now += 30_000; // 11:00:00, the next hour
    meter.sample();
    now += 3_600_000; // a stalled timer counts two periods at most
    meter.sample();
    await meter.close();
    const again = new UsageMeter({ file, manager: fakeManager([]), keepDays: 90, log: silent, now: () => now });
    const all = again.report(0, now + 1);
    // alice: two clusters (5 and 1 cores) for 30 s + 60 s; bob: one (3 cores)
    expect(all).toEqual([
      { user: "alice", clusterHours: round(2 * 90 / 3600), coreHours: round(6 * 90 / 3600) },
      { user: "bob", clusterHours: round(90 / 3600), coreHours: round(3 * 90 / 3600) },
    ]);
    expect(again.report(Date.parse("2026-12-01T12:00:00Z"), now + 1)).toEqual([
      { user: "alice", clusterHours: round(2 * 60 / 3600), coreHours: round(6 * 60 / 3600) },
      { user: "bob", clusterHours: round(60 / 3600), coreHours: round(3 * 60 / 3600) },
    ]);
    expect(again.report(0, Date.parse("2026-12-01T10:00:00Z"))).toEqual([]);
  });
});

function round(hours: number): number {
  return Math.round(hours * 1000) / 1000;
}
