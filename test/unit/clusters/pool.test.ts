import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { Backend, SchedulerLaunch } from "../../../src/backends/backend.js";
import { CLAIM_ROUTE } from "../../../src/backends/pool-preload.js";
import { ClusterManager } from "../../../src/clusters/manager.js";
import { Job, publicStatus, type ClusterRecord } from "../../../src/clusters/model.js";
import { WarmPool, canonicalJson, poolKey, type PoolMetrics } from "../../../src/clusters/pool.js";
import { memoryStore, type ClusterStore } from "../../../src/clusters/store.js";
import { resolveConfig, type GatewayConfig } from "../../../src/config/config.js";
import { loadSettings } from "../../../src/config/load.js";
import { createLogger } from "../../../src/logging.js";
import { loadCatalog } from "../../../src/options/catalog.js";

const config = resolveConfig(loadSettings(undefined, {}, new Map()), {});
const catalog = loadCatalog(config);
const log = createLogger("silent");
const alice = { name: "alice", admin: false };

const LAUNCH: SchedulerLaunch = {
  name: "c1", user: "alice", token: "t1", tlsCert: "cert1", tlsKey: "key1", apiUrl: "http://gw:8000/api",
  heartbeatPeriod: 15, adaptivePeriod: 3, idleTimeout: 3600, schedulerCores: 1, schedulerMemoryBytes: 2 * 1024 ** 3,
  environment: { A: "1", B: "2" }, image: null, mounts: [], workerResources: {},
};

describe("the pool key", () => {
  const key = (change: Partial<SchedulerLaunch>, fingerprint = "local") => poolKey({ ...LAUNCH, ...change }, fingerprint);

  it("ignores what is set or applies at the claim: identity, owner, credentials, idle timeout", () => {
    expect(key({ name: "c2", user: "bob", token: "t2", tlsCert: "cert2", tlsKey: "key2", idleTimeout: 5, warm: true })).toBe(key({}));
  });

  it("changes with everything that fixes a scheduler at start", () => {
    const changes: Array<Partial<SchedulerLaunch>> = [
      { image: "stack:2" }, { environment: { A: "1" } }, { environment: { A: "1", B: "3" } }, { schedulerCores: 2 },
      { schedulerMemoryBytes: 1024 ** 3 }, { heartbeatPeriod: 5 }, { adaptivePeriod: 1 }, { apiUrl: "http://other:8000/api" },
    ];
    const keys = new Set([key({}), ...changes.map((c) => key(c))]);
    expect(keys.size).toBe(changes.length + 1);
    expect(key({}, "another dask command")).not.toBe(key({}));
  });

  it("does not depend on the order of environment variables", () => {
    expect(key({ environment: { B: "2", A: "1" } })).toBe(key({}));
    expect(canonicalJson({ b: 1, a: [{ d: 1, c: 2 }] })).toBe('{"a":[{"c":2,"d":1}],"b":1}');
  });

  it("is the same for requests that differ only in worker options, and differs for scheduler ones (through the manager)", async () => {
    const h = harness({ size: 1 });
    await h.manager.start();
    const keyOf = (options: object) => {
      const parsed = catalog.parse(options);
      if (!parsed.ok) throw new Error(parsed.error);
      return (h.manager as unknown as { keyOf(c: unknown): string }).keyOf(parsed.config);
    };
    expect(keyOf({ worker_cores: 4, worker_memory: 8, idle_timeout: 5 })).toBe(keyOf({}));
    expect(keyOf({ environment: { X: "1" } })).not.toBe(keyOf({}));
    await h.close();
  });
});

/** A scheduler API that answers claims (or refuses them), as the claim preload does. */
async function schedulerApi(answer: () => number): Promise<{ url: string; claims: Array<{ token: string; body: string }>; server: Server }> {
  const claims: Array<{ token: string; body: string }> = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      if (req.url === CLAIM_ROUTE) claims.push({ token: String(req.headers.authorization).replace("token ", ""), body });
      res.statusCode = answer();
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, claims, server };
}

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

interface HarnessOptions {
  size: number;
  maxSchedulers?: number | null;
  parallel?: number;
  maxAge?: number;
  startCluster?: (l: SchedulerLaunch) => Promise<Record<string, string>>;
  store?: ClusterStore;
}

/** A manager and its pool over a backend that records launches; the clock moves only when told to. */
function harness(o: HarnessOptions) {
  let t = 1_000_000;
  const now = () => t;
  const launches: SchedulerLaunch[] = [];
  const launchTimes: number[] = [];
  const stops: string[] = [];
  const backend: Backend = {
    kind: "fake",
    startCluster: async (l) => {
      launches.push(l);
      launchTimes.push(t);
      return o.startCluster ? o.startCluster(l) : { id: l.name };
    },
    stopCluster: async (l) => void stops.push(l.name),
    startWorker: async () => ({}),
    stopWorker: async () => {},
    checkCluster: async () => null,
    checkWorker: async () => null,
    schedulerFingerprint: () => "fake",
    close: async () => {},
  };
  const recycled: string[] = [];
  const claims: string[] = [];
  const metrics: PoolMetrics = { claim: (r) => void claims.push(r), recycled: (r) => void recycled.push(r) };
  const settings: GatewayConfig["pool"] = {
    ...config.pool, size: o.size, maxSchedulers: o.maxSchedulers ?? null, refillParallel: o.parallel ?? 2,
    maxAge: o.maxAge ?? 3600, failureBackoff: 1,
  };
  const parsed = catalog.parse({});
  if (!parsed.ok) throw new Error(parsed.error);
  const pool = new WarmPool({ settings, sets: [{ options: parsed.options, config: parsed.config }], log, metrics, now });
  const manager = new ClusterManager({
    backend, store: o.store ?? memoryStore, log, clusters: config.clusters, limits: { ...config.limits, createRate: 1000 },
    catalog, apiUrl: "http://gateway/api", pool, now,
  });
  const warm = () => launches.filter((l) => l.warm).map((l) => manager.forScheduler(l.name)).filter((c): c is ClusterRecord => c?.pool !== undefined);
  /** The scheduler's first heartbeat for every warm scheduler started and not yet running. */
  const heartbeatAll = (apiAddress: string) => {
    for (const c of warm()) {
      if (c.status === Job.SUBMITTED && c.target === Job.RUNNING) {
        manager.heartbeat(c, {
          scheduler_address: `tls://127.0.0.1:1${c.name.slice(0, 3)}`, dashboard_address: "", api_address: apiAddress,
          count: 0, active_workers: [], closing_workers: [], closed_workers: [],
        });
      }
    }
  };
  /** Waits until nothing is pending: starts being recorded (key pairs take real time), reconciles, pokes. */
  const settle = async () => {
    for (let quiet = 0; quiet < 3;) {
      await manager.idle();
      await new Promise((r) => setTimeout(r, 5));
      quiet = pool.pendingStarts === 0 ? quiet + 1 : 0;
    }
  };
  return {
    manager, pool, launches, launchTimes, stops, recycled, claims, warm, heartbeatAll, settle,
    advance: (seconds: number) => void (t += seconds * 1000),
    close: async () => {
      await manager.close();
    },
  };
}

describe("the warm pool", () => {
  it("keeps pool.size schedulers ready, each with its own name, key pair and token, seen by no user", async () => {
    const api = await schedulerApi(() => 200);
    servers.push(api.server);
    const h = harness({ size: 3, maxSchedulers: 3, parallel: 3 });
    await h.manager.start();
    await h.settle();
    h.heartbeatAll(api.url);
    await h.settle();
    const warm = h.warm();
    expect(warm).toHaveLength(3);
    expect(new Set(warm.map((c) => c.name)).size).toBe(3);
    expect(new Set(warm.map((c) => c.token)).size).toBe(3);
    expect(new Set(warm.map((c) => c.tlsKey)).size).toBe(3);
    expect(warm.every((c) => c.status === Job.RUNNING && c.user === "")).toBe(true);
    expect(h.launches.every((l) => l.warm === true && l.idleTimeout === 0)).toBe(true);
    for (const c of warm) expect(h.manager.get(c.name)).toBeUndefined();
    expect(h.manager.list(null, ["PENDING", "RUNNING", "STOPPING", "STOPPED", "FAILED"])).toEqual([]);
    expect(Object.values(h.manager.statusCounts()).reduce((a, b) => a + b, 0)).toBe(0);
    expect(h.pool.counts()).toEqual([{ key: warm[0]!.pool!.key, ready: 3, starting: 0 }]);
    await h.close();
  });

  it("hands each of 64 concurrent creates a different cluster, recorded as the user's before the answer", async () => {
    const api = await schedulerApi(() => 200);
    servers.push(api.server);
    const saved: Array<{ name: string; user: string; pool: boolean }> = [];
    const store: ClusterStore = { ...memoryStore, save: async (c) => void saved.push({ name: c.name, user: c.user, pool: c.pool !== undefined }) };
    const h = harness({ size: 8, maxSchedulers: 8, parallel: 8, store });
    await h.manager.start();
    await h.settle();
    h.heartbeatAll(api.url);
    await h.settle();
    const warmNames = new Set(h.warm().map((c) => c.name));
    expect(warmNames.size).toBe(8);
    h.pool.close(); // no refill in between: exactly the eight warm ones can be hit
    const created = await Promise.all(Array.from({ length: 64 }, () => h.manager.create(alice, {})));
    const names = created.map((c) => c.name);
    expect(new Set(names).size).toBe(64);
    const hits = created.filter((c) => warmNames.has(c.name));
    expect(hits).toHaveLength(8);
    expect(h.claims.filter((r) => r === "hit")).toHaveLength(8);
    expect(h.claims.filter((r) => r === "miss")).toHaveLength(56);
    // Each warm scheduler answered exactly one claim, with its own token and the request's idle timeout.
    expect(api.claims).toHaveLength(8);
    expect(new Set(api.claims.map((c) => c.token)).size).toBe(8);
    expect(api.claims.every((c) => JSON.parse(c.body).idle_timeout === 3600)).toBe(true);
    for (const c of hits) {
      expect(publicStatus(c.status, c.target)).toBe("RUNNING");
      expect(c.user).toBe("alice");
      expect(c.pool).toBeUndefined();
      expect(saved.some((s) => s.name === c.name && s.user === "alice" && !s.pool)).toBe(true);
      expect(h.manager.get(c.name)).toBe(c);
    }
    expect(h.manager.list("alice")).toHaveLength(64);
    await h.close();
  });

  it("uses nothing for a refused create: limits come first", async () => {
    const api = await schedulerApi(() => 200);
    servers.push(api.server);
    const h = harness({ size: 1 });
    (h.manager as unknown as { opts: { limits: GatewayConfig["limits"] } }).opts.limits = { ...config.limits, userMaxClusters: 0 };
    await h.manager.start();
    await h.settle();
    h.heartbeatAll(api.url);
    await h.settle();
    await expect(h.manager.create(alice, {})).rejects.toThrow(/user_max_clusters/);
    await expect(h.manager.create(alice, { nope: 1 })).rejects.toThrow();
    expect(h.claims).toEqual(["refused", "refused"]);
    expect(api.claims).toEqual([]);
    expect(h.pool.counts()[0]!.ready).toBe(1);
    await h.close();
  });

  it("stops a warm scheduler that does not answer its claim and starts the cluster cold instead", async () => {
    const api = await schedulerApi(() => 500);
    servers.push(api.server);
    const h = harness({ size: 1 });
    await h.manager.start();
    await h.settle();
    h.heartbeatAll(api.url);
    await h.settle();
    const [warm] = h.warm();
    const c = await h.manager.create(alice, {});
    expect(c.name).not.toBe(warm!.name);
    expect(publicStatus(c.status, c.target)).toBe("PENDING");
    await h.settle();
    expect(h.stops).toContain(warm!.name);
    expect(h.recycled).toEqual(["claim_failed"]);
    expect(h.manager.forScheduler(warm!.name)).toBeUndefined(); // nothing of a stopped warm scheduler is kept
    await h.close();
  });

  it("bounds refills in parallel", async () => {
    const pending: Array<() => void> = [];
    const h = harness({ size: 5, parallel: 2, startCluster: () => new Promise((resolve) => pending.push(() => resolve({}))) });
    await h.manager.start();
    for (let i = 0; i < 20 && h.launches.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    h.pool.tick();
    await new Promise((r) => setTimeout(r, 50));
    expect(h.launches).toHaveLength(2);
    for (const release of pending.splice(0)) release();
    await h.close();
  });

  it("backs off after failures: a broken command cannot cause a storm of starts", async () => {
    const h = harness({ size: 1, parallel: 2, startCluster: async () => Promise.reject(new Error("cannot start 'dask': ENOENT")) });
    await h.manager.start();
    for (let second = 0; second <= 40; second++) {
      h.pool.tick();
      await h.settle();
      h.advance(1);
    }
    const startsAt = h.launchTimes.map((t) => (t - h.launchTimes[0]!) / 1000);
    // 1 s, then 2, 4, 8, 16 s between attempts (pool.failure_backoff 1 s, doubled per failure).
    expect(startsAt).toEqual([0, 1, 3, 7, 15, 31]);
    expect(h.recycled.every((r) => r === "start_failed")).toBe(true);
    await h.close();
  });

  it("replaces a warm scheduler that died, one past pool.max_age, and one of a key no longer configured", async () => {
    const api = await schedulerApi(() => 200);
    servers.push(api.server);
    const h = harness({ size: 1, maxAge: 100 });
    await h.manager.start();
    await h.settle();
    h.heartbeatAll(api.url);
    await h.settle();
    const [first] = h.warm();
    h.manager.requestStop(first!, Job.FAILED, "scheduler process 1 was killed by SIGKILL");
    await h.settle();
    h.advance(1.5); // the back-off after a failure
    h.pool.tick();
    await h.settle();
    h.heartbeatAll(api.url);
    await h.settle();
    const [second] = h.warm();
    expect(second!.name).not.toBe(first!.name);
    expect(h.recycled).toEqual(["died"]);

    h.advance(101);
    h.pool.tick();
    await h.settle();
    expect(h.recycled).toEqual(["died", "max_age"]);
    expect(h.stops).toContain(second!.name);
    const [third] = h.warm();
    expect(third!.name).not.toBe(second!.name);

    third!.pool!.key = "from-an-older-configuration";
    h.pool.tick();
    await h.settle();
    expect(h.recycled).toEqual(["died", "max_age", "config_changed"]);
    await h.close();
  });

  it("after a restart, adopts warm schedulers, and stops one whose claim was cut short", async () => {
    const api = await schedulerApi(() => 200);
    servers.push(api.server);
    const first = harness({ size: 2, parallel: 2 });
    await first.manager.start();
    await first.settle();
    first.heartbeatAll(api.url);
    await first.settle();
    const records = first.warm();
    expect(records).toHaveLength(2);
    records[1]!.pool!.claiming = true;
    first.pool.close();
    const store: ClusterStore = { ...memoryStore, load: async () => ({ records, unreadable: [] }) };
    const second = harness({ size: 2, parallel: 2, store });
    await second.manager.start();
    await second.settle();
    expect(second.recycled).toEqual(["interrupted_claim"]);
    expect(second.manager.forScheduler(records[0]!.name)?.pool).toBeDefined();
    expect(second.manager.forScheduler(records[1]!.name)).toBeUndefined();
    expect(second.launches.filter((l) => l.warm)).toHaveLength(1); // only the stopped one is replaced
    await second.close();
  });
});
