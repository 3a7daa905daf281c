import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type Docker from "dockerode";
import { describe, expect, it } from "vitest";
import { RECORD_LABEL, openRecord, recordsKey, sealRecord, swarmRecordStore } from "../../../src/backends/swarm/record-store.js";
import { Job, type ClusterRecord } from "../../../src/clusters/model.js";
import { fileStore, migratingStore } from "../../../src/clusters/store.js";

const KEY = recordsKey("a records key of enough length", "g1");

function record(name: string, count = 0): ClusterRecord {
  return {
    name, user: "alice", token: "TOKEN-SECRET", tlsCert: "CERT", tlsKey: "KEY-SECRET", options: {}, config: {} as ClusterRecord["config"],
    status: Job.RUNNING, target: Job.RUNNING, startTime: 1, stopTime: null, count, schedulerAddress: "tls://s:8786",
    dashboardAddress: "", apiAddress: "", lastHeartbeat: 5, workerFailures: 0, reason: null, events: [{ time: 1, kind: "created", message: "x" }] as ClusterRecord["events"],
    state: { serviceId: "svc" }, workers: new Map([["w1", { name: "w1", status: Job.RUNNING, target: Job.RUNNING, closeExpected: false, createdAt: 2, submittedAt: 3, state: {} }]]),
    clients: 3, lastClientSeen: 4,
  };
}

interface FakeConfig { ID: string; Spec: { Name: string; Labels: Record<string, string>; Data: string } }

/** The configs part of the Docker API, in memory (the real engine is exercised by test/swarm). */
function fakeDocker() {
  const configs = new Map<string, FakeConfig>();
  let next = 0;
  let creates = 0;
  const matches = (c: FakeConfig, filters?: { label?: string[] }) =>
    (filters?.label ?? []).every((f) => {
      const [k, v] = f.split("=", 2);
      return k! in c.Spec.Labels && (v === undefined || c.Spec.Labels[k!] === v);
    });
  const docker = {
    async createConfig(spec: FakeConfig["Spec"]) {
      creates++;
      if ([...configs.values()].some((c) => c.Spec.Name === spec.Name)) throw Object.assign(new Error("name conflict"), { statusCode: 409 });
      const ID = `id${next++}`;
      configs.set(ID, { ID, Spec: spec });
      return { id: ID };
    },
    async listConfigs(opts: { filters?: { label?: string[] } }) {
      return [...configs.values()].filter((c) => matches(c, opts.filters));
    },
    getConfig(id: string) {
      return {
        async remove() {
          if (!configs.delete(id)) throw Object.assign(new Error("no such config"), { statusCode: 404 });
        },
      };
    },
  };
  return { docker: docker as unknown as Docker, configs, creates: () => creates };
}

describe("sealed records", () => {
  it("round-trip, and fail with another key, another cluster's name or altered data", () => {
    const sealed = sealRecord(KEY, "c1", "the record");
    expect(sealed).not.toContain("the record");
    expect(openRecord(KEY, "c1", sealed)).toBe("the record");
    expect(() => openRecord(recordsKey("another key of enough length", "g1"), "c1", sealed)).toThrow(/records key/);
    expect(() => openRecord(recordsKey("a records key of enough length", "g2"), "c1", sealed)).toThrow(/records key/);
    expect(() => openRecord(KEY, "c2", sealed)).toThrow(/records key/);
    const box = JSON.parse(sealed);
    box.data = Buffer.from("tampered").toString("base64");
    expect(() => openRecord(KEY, "c1", JSON.stringify(box))).toThrow(/records key/);
  });

  it("refuses a short key", () => {
    expect(() => recordsKey("short", "g1")).toThrow(/at least 16/);
  });
});

describe("swarmRecordStore", () => {
  it("keeps one sealed config per cluster, with nothing secret in clear", async () => {
    const { docker, configs } = fakeDocker();
    const store = swarmRecordStore(docker, "g1", KEY, () => {});
    const c = record("c1");
    await store.save(c);
    c.count = 2;
    await store.save(c);
    expect(configs.size).toBe(1);
    const [only] = [...configs.values()];
    expect(only!.Spec.Labels).toMatchObject({ "dask-gateway.gateway": "g1", [RECORD_LABEL.of]: "c1" });
    expect(only!.Spec.Labels).not.toHaveProperty("dask-gateway.cluster"); // cluster cleanups must not take it
    const data = Buffer.from(only!.Spec.Data, "base64").toString();
    for (const secret of ["TOKEN-SECRET", "KEY-SECRET", "alice"]) expect(data).not.toContain(secret);

    const loaded = await swarmRecordStore(docker, "g1", KEY, () => {}).load();
    expect(loaded.unreadable).toEqual([]);
    expect(loaded.records).toHaveLength(1);
    const back = loaded.records[0]!;
    expect(back.count).toBe(2);
    expect(back.tlsKey).toBe("KEY-SECRET");
    expect(back.events).toEqual([]);
    expect(back.clients).toBe(0);
    expect([...back.workers.keys()]).toEqual(["w1"]);
  });

  it("writes nothing for an unchanged record, and collapses queued saves into the newest state", async () => {
    const { docker, creates } = fakeDocker();
    const store = swarmRecordStore(docker, "g1", KEY, () => {});
    const c = record("c1");
    await store.save(c);
    await store.save(c);
    expect(creates()).toBe(1);
    const saves = [1, 2, 3, 4].map((n) => {
      c.count = n;
      return store.save(c);
    });
    await Promise.all(saves);
    expect(creates()).toBeLessThanOrEqual(3);
    expect((await swarmRecordStore(docker, "g1", KEY, () => {}).load()).records[0]!.count).toBe(4);
  });

  it("loads the newest version, removes older ones a crash left, and ignores other gateways", async () => {
    const { docker, configs } = fakeDocker();
    const store = swarmRecordStore(docker, "g1", KEY, () => {});
    await store.save(record("c1", 1));
    // A version left behind by a gateway that died between creating the new config and removing the old.
    await docker.createConfig({ Name: "old", Labels: { "dask-gateway.gateway": "g1", [RECORD_LABEL.of]: "c1", [RECORD_LABEL.seq]: "1" }, Data: "" });
    await swarmRecordStore(docker, "g2", recordsKey("key of the other gateway", "g2"), () => {}).save(record("c9"));
    const loaded = await swarmRecordStore(docker, "g1", KEY, () => {}).load();
    expect(loaded.records.map((r) => [r.name, r.count])).toEqual([["c1", 1]]);
    expect([...configs.values()].filter((c) => c.Spec.Labels["dask-gateway.gateway"] === "g1")).toHaveLength(1);
  });

  it("reports records it cannot decrypt as unreadable and keeps them", async () => {
    const { docker, configs } = fakeDocker();
    await swarmRecordStore(docker, "g1", KEY, () => {}).save(record("c1"));
    const bad: string[] = [];
    const loaded = await swarmRecordStore(docker, "g1", recordsKey("the wrong key, long enough", "g1"), (name, err) => bad.push(`${name}: ${err.message}`)).load();
    expect(loaded).toEqual({ records: [], unreadable: ["c1"] });
    expect(bad[0]).toMatch(/^c1: .*swarm.records_key_file/);
    expect(configs.size).toBe(1);
  });

  it("removes every version of a cluster, after the saves queued before the removal", async () => {
    const { docker, configs } = fakeDocker();
    const store = swarmRecordStore(docker, "g1", KEY, () => {});
    const c = record("c1");
    await store.save(c);
    c.count = 7;
    await Promise.all([store.save(c), store.remove("c1")]);
    expect(configs.size).toBe(0);
  });
});

describe("migratingStore", () => {
  it("moves records from state_dir into the new store once", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dgw-records-"));
    const files = fileStore(dir, () => {});
    await files.save(record("c1", 3));
    const { docker } = fakeDocker();
    const swarm = swarmRecordStore(docker, "g1", KEY, () => {});
    const loaded = await migratingStore(swarm, files).load();
    expect(loaded.records.map((r) => [r.name, r.count])).toEqual([["c1", 3]]);
    expect(readdirSync(dir)).toEqual([]);
    expect((await migratingStore(swarm, files).load()).records).toHaveLength(1);
  });
});
