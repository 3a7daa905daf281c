import { describe, expect, it } from "vitest";
import type { Backend } from "../../../src/backends/backend.js";
import { ClusterManager } from "../../../src/clusters/manager.js";
import { PublicError } from "../../../src/errors.js";
import { Job, type ClusterRecord } from "../../../src/clusters/model.js";
import { memoryStore, type ClusterStore } from "../../../src/clusters/store.js";
import { resolveConfig } from "../../../src/config/config.js";
import { loadSettings } from "../../../src/config/load.js";
import { createLogger } from "../../../src/logging.js";
import { loadCatalog } from "../../../src/options/catalog.js";

const config = resolveConfig(loadSettings(undefined, {}, new Map()), {});

/** A backend that records what it is asked (the real backends are exercised by test/python and test/swarm). */
function recordingBackend() {
  const calls: string[] = [];
  const backend: Backend = {
    kind: "fake",
    startCluster: async (l) => (calls.push(`start ${l.name}`), { id: l.name }),
    stopCluster: async (l) => void calls.push(`stop ${l.name}`),
    startWorker: async () => ({}),
    stopWorker: async () => {},
    checkCluster: async () => null,
    checkWorker: async () => null,
    cleanupOrphans: async (known) => void calls.push(`cleanup except ${[...known].sort().join(",")}`),
    close: async () => {},
  };
  return { backend, calls };
}

function manager(backend: Backend, store: ClusterStore) {
  return new ClusterManager({
    backend, store, log: createLogger("silent"), clusters: config.clusters, limits: config.limits,
    catalog: loadCatalog(config), apiUrl: "http://gateway/api",
  });
}

const alice = { name: "alice", admin: false };

describe("ClusterManager and its record store", () => {
  it("answers 503 and keeps nothing when the record cannot be written", async () => {
    const { backend, calls } = recordingBackend();
    const failing: ClusterStore = { ...memoryStore, save: async () => Promise.reject(new Error("engine unreachable")) };
    const m = manager(backend, failing);
    const refused = await m.create(alice, {}).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(PublicError);
    expect((refused as PublicError).status).toBe(503);
    expect((refused as PublicError).message).toMatch(/could not be recorded \(engine unreachable\); nothing was created/);
    expect(m.list("alice")).toEqual([]);
    await m.idle();
    expect(calls).toEqual([]);
    await m.close();
  });

  it("records the cluster before anything starts", async () => {
    const { backend, calls } = recordingBackend();
    const saved: string[] = [];
    const store: ClusterStore = { ...memoryStore, save: async (c) => void saved.push(`${c.name} ${c.status}`) };
    const m = manager(backend, store);
    const c = await m.create(alice, {});
    expect(saved[0]).toBe(`${c.name} ${Job.CREATED}`);
    await m.idle();
    expect(calls).toEqual([`start ${c.name}`]);
    await m.close();
  });

  it("leaves the clusters of unreadable records to themselves at start", async () => {
    const { backend, calls } = recordingBackend();
    const store: ClusterStore = { ...memoryStore, load: async () => ({ records: [] as ClusterRecord[], unreadable: ["c-unreadable"] }) };
    const m = manager(backend, store);
    await m.start();
    expect(calls).toEqual(["cleanup except c-unreadable"]);
    await m.close();
  });
});
