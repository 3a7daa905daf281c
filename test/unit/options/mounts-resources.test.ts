import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { SchedulerLaunch, WorkerLaunch } from "../../../src/backends/backend.js";
import { stackExitReason, missingDaskReason, MINIMUM_VERSIONS } from "../../../src/backends/stack-preload.js";
import { schedulerServiceSpec, workerServiceSpec } from "../../../src/backends/swarm/docker-objects.js";
import { nodesOffering, resourcesHeld, resourcesNow, resourcesShortfall, type SwarmNode } from "../../../src/backends/swarm/placement.js";
import { poolKey } from "../../../src/clusters/pool.js";
import { resolveConfig } from "../../../src/config/config.js";
import { loadSettings } from "../../../src/config/load.js";
import { loadCatalog } from "../../../src/options/catalog.js";
import { mountsFor, userVolumeName, validateMounts, type MountDefinition } from "../../../src/options/mounts.js";

const MOUNTS: MountDefinition[] = [
  { name: "shared", type: "volume", source: "project-data", target: "/data", driver_opts: { type: "nfs", o: "addr=10.0.0.5", device: ":/export" } },
  { name: "refs", type: "bind", source: "/srv/refs", target: "/refs", read_only: true },
  { name: "home", type: "user_volume", source: "home-{user}", target: "/home/dask/persist", env: "PERSIST_DIR" },
  { name: "scratch", type: "volume", source: "scratch", target: "/scratch", workers_only: true },
];

function catalogWith(yaml: string) {
  const dir = mkdtempSync(join(tmpdir(), "dgw-options-"));
  writeFileSync(join(dir, "options.yaml"), yaml);
  const config = resolveConfig(loadSettings(undefined, { DGW_CLUSTERS_OPTIONS_FILE: join(dir, "options.yaml") }, new Map()), {});
  return () => loadCatalog(config);
}

const FILE = `
mounts:
  - {name: shared, type: volume, source: project-data, target: /data}
  - {name: home, type: user_volume, source: "home-{user}", target: /home/dask/persist}
  - {name: refs, type: bind, source: /srv/refs, target: /refs, read_only: true}
options:
  - {type: bool, field: project_data, target: mounts.shared}
  - type: select
    field: data
    target: mounts
    options: [{key: none, value: []}, {key: mine, value: home}, {key: both, value: [home, refs]}]
  - {type: int, field: worker_gpus, target: resources.GPU, default: 0, min: 0, max: 4}
  - type: select
    field: stack
    target: image
    options: [{key: "dask 2026.3", value: "dgw-sidecar:latest"}, {key: "plain python", value: "python:3.12"}]
`;

describe("mount definitions", () => {
  it("accepts the three kinds and refuses what could reach outside the allow-list", () => {
    expect(validateMounts(MOUNTS)).toBeNull();
    expect(validateMounts([{ ...MOUNTS[1], source: "relative/path" }])).toMatch(/mount 'refs'.*absolute path/);
    expect(validateMounts([{ ...MOUNTS[1], target: "/a/../etc" }])).toMatch(/target must be an absolute path/);
    expect(validateMounts([{ ...MOUNTS[2], source: "home" }])).toMatch(/containing \{user\}/);
    expect(validateMounts([{ ...MOUNTS[0], surprise: 1 }])).toMatch(/unknown key\(s\) surprise/);
    expect(validateMounts([MOUNTS[0], MOUNTS[0]])).toMatch(/'shared' is defined twice/);
    expect(validateMounts([{ ...MOUNTS[1], driver: "nfs" }])).toMatch(/not bind mounts/);
  });

  it("gives every user a volume of their own, whatever their names", () => {
    const names = ["alice", "a.b", "a_b", "a-b", "A B", "a_2eb", "ü", "../x"];
    const volumes = names.map((u) => userVolumeName("home-{user}", u));
    expect(new Set(volumes).size).toBe(names.length);
    for (const v of volumes) expect(v).toMatch(/^home-[A-Za-z0-9_.-]+$/);
    expect(userVolumeName("home-{user}", "alice")).toBe("home-alice");
  });

  it("gives the scheduler all but workers_only mounts, and a warm scheduler no user volume", () => {
    expect(mountsFor(MOUNTS, "bob", "scheduler").map((m) => m.source)).toEqual(["project-data", "/srv/refs", "home-bob"]);
    expect(mountsFor(MOUNTS, "bob", "worker").map((m) => m.name)).toEqual(["shared", "refs", "home", "scratch"]);
    expect(mountsFor(MOUNTS, "", "scheduler").map((m) => m.name)).toEqual(["shared", "refs"]);
  });
});

describe("options that choose mounts, stacks and resources", () => {
  it("turns choices into mounts and generic resources, and refuses values outside the allow-list naming the field", () => {
    const catalog = catalogWith(FILE)();
    const parsed = catalog.parse({ project_data: true, data: "both", worker_gpus: 1, stack: "plain python" });
    if (!parsed.ok) throw new Error(parsed.error);
    expect(parsed.config.mounts!.map((m) => m.name)).toEqual(["shared", "home", "refs"]);
    expect(parsed.config.workerResources).toEqual({ GPU: 1 });
    expect(parsed.config.image).toBe("python:3.12");
    const none = catalog.parse({});
    expect(none.ok && none.config.mounts).toEqual([]);
    expect(none.ok && none.config.workerResources).toEqual({});
    expect(catalog.parse({ data: "/etc" })).toEqual({ ok: false, error: "'/etc' is not a valid option for data" });
    expect(catalog.parse({ stack: "evil:latest" })).toEqual({ ok: false, error: "'evil:latest' is not a valid option for stack" });
    expect(catalog.parse({ worker_gpus: -1 })).toMatchObject({ ok: false, error: expect.stringMatching(/^worker_gpus must be >= 0/) });
  });

  it("refuses, at startup, options that would mount something undefined or count a resource with another type", () => {
    expect(catalogWith("options: [{type: bool, field: x, target: mounts.nope}]")).toThrow(/no mount is named 'nope'/);
    expect(catalogWith(`mounts: [{name: a, type: volume, source: a, target: /a}]\noptions: [{type: string, field: x, target: mounts}]`)).toThrow(/select option/);
    expect(catalogWith(`mounts: [{name: a, type: volume, source: a, target: /a}]\noptions: [{type: select, field: x, target: mounts, options: [{key: k, value: b}]}]`)).toThrow(/"b" is not a mount/);
    expect(catalogWith("options: [{type: float, field: g, target: resources.GPU}]")).toThrow(/int option with min 0/);
    expect(catalogWith("mounts: [{name: a, type: bind, source: rel, target: /a}]\noptions: []")).toThrow(/mount 'a'.*absolute/);
  });
});

const launch: SchedulerLaunch = {
  name: "c1", user: "alice", token: "t", tlsCert: "c", tlsKey: "k", apiUrl: "http://gw/api", heartbeatPeriod: 15, adaptivePeriod: 3,
  idleTimeout: 0, schedulerCores: 1, schedulerMemoryBytes: 2 ** 30, environment: {}, image: null, mounts: MOUNTS, workerResources: { GPU: 1 },
};
const settings = { gatewayId: "g1", image: "img", networkId: "net", schedulerConstraints: [] };
const ids = { cert: "i1", key: "i2", token: "i3" };

describe("swarm specs with mounts and resources", () => {
  it("mounts exactly the chosen definitions, with their variables", () => {
    const spec = schedulerServiceSpec(settings, launch, ids, "img").TaskTemplate.ContainerSpec;
    expect(spec.Mounts).toEqual([
      { Type: "volume", Source: "project-data", Target: "/data", ReadOnly: false, VolumeOptions: { Labels: { "dask-gateway.gateway": "g1" }, DriverConfig: { Name: "local", Options: MOUNTS[0]!.driver_opts } } },
      { Type: "bind", Source: "/srv/refs", Target: "/refs", ReadOnly: true },
      { Type: "volume", Source: "home-alice", Target: "/home/dask/persist", ReadOnly: false, VolumeOptions: { Labels: { "dask-gateway.gateway": "g1" } } },
    ]);
    expect(spec.Env).toEqual(expect.arrayContaining(["DASK_GATEWAY_MOUNT_SHARED=/data", "PERSIST_DIR=/home/dask/persist"]));
    expect(spec.Env.join()).not.toContain("SCRATCH");
  });

  it("labels a worker with the generic resources it holds and advertises them to Dask with its cores and memory", () => {
    const w: WorkerLaunch = { cluster: launch, clusterState: {}, workerName: "w1", schedulerAddress: "tls://s:8786", workerCores: 2, workerThreads: 2, workerMemoryBytes: 4e9 };
    const spec = workerServiceSpec(settings, w, ids, "node-a", "img");
    // Not a Swarm reservation: Swarm's constraint enforcer would reject the task at the node's next update.
    expect(spec.TaskTemplate.Resources.Reservations).toEqual({ NanoCPUs: 2e9, MemoryBytes: 4e9 });
    expect(spec.Labels["dask-gateway.resources"]).toBe("GPU=1");
    const cmd = spec.TaskTemplate.ContainerSpec.Command;
    expect(cmd[cmd.indexOf("--resources") + 1]).toBe("CPU=2,MEMORY=4000000000,GPU=1");
    expect(spec.TaskTemplate.ContainerSpec.Mounts.map((m) => m.Target)).toContain("/scratch");
  });

  it("places GPU workers only on nodes that offer enough, counting named and discrete resources", () => {
    const node = (id: string, generic: object[]): SwarmNode => ({ ID: id, Description: { Resources: { GenericResources: generic } } });
    const nodes = [
      node("none", []),
      node("one", [{ DiscreteResourceSpec: { Kind: "GPU", Value: 1 } }]),
      node("named", [{ NamedResourceSpec: { Kind: "GPU", Value: "gpu0" } }, { NamedResourceSpec: { Kind: "GPU", Value: "gpu1" } }]),
    ];
    expect(nodesOffering(nodes, {}).length).toBe(3);
    expect(nodesOffering(nodes, { GPU: 1 }).map((n) => n.ID)).toEqual(["one", "named"]);
    expect(nodesOffering(nodes, { GPU: 2 }).map((n) => n.ID)).toEqual(["named"]);
    expect(nodesOffering(nodes, { FPGA: 1 })).toEqual([]);
    const held = resourcesHeld([{ node: "one", label: "GPU=1" }, { node: "named", label: "GPU=1,FPGA=1" }, { node: "none", label: undefined }]);
    expect(nodesOffering(nodes, { GPU: 1 }, held).map((n) => n.ID)).toEqual(["named"]);
    expect(nodesOffering(nodes, { GPU: 2 }, held)).toEqual([]);
  });

  it("counts how many workers fit now beside the units other workers hold", () => {
    const node = (id: string, gpus: number): SwarmNode => ({ ID: id, Description: { Hostname: `host-${id}`, Resources: { GenericResources: [{ DiscreteResourceSpec: { Kind: "GPU", Value: gpus } }] } } });
    const nodes = [node("a", 1), node("b", 2)];
    expect(resourcesNow(nodes, 1, { GPU: 1 }, resourcesHeld([]), new Map())).toBeNull();
    // a's GPU is held by another cluster, b has one of two free: one worker now.
    const others = resourcesHeld([{ node: "a", label: "GPU=1" }, { node: "b", label: "GPU=1" }]);
    expect(resourcesNow(nodes, 1, { GPU: 1 }, others, new Map())).toEqual({ workers: 1, why: "the generic resources of host-a (GPU 1 of 1 held) are held by other workers" });
    // This cluster's own worker on a keeps its place.
    expect(resourcesNow(nodes, 1, { GPU: 1 }, others, new Map([["a", 1]]))).toBeNull();
    expect(resourcesNow(nodes, 1, {}, others, new Map())).toBeNull();
    expect(resourcesShortfall(nodes, { GPU: 2 })).toBeNull();
    expect(resourcesShortfall(nodes, { GPU: 3, FPGA: 1 })).toBe("each worker asks for GPU=3, FPGA=1, more than any eligible swarm node offers (GPU: at most 2 (host-b); FPGA: none); nodes declare generic resources with the engine's node-generic-resources setting");
  });

  it("keeps worker-only choices out of the pool key, and clusters whose scheduler mounts a user volume out of the pool", () => {
    const base = { ...launch, mounts: [], workerResources: {} };
    const key = (l: SchedulerLaunch) => poolKey(l, "f");
    expect(key({ ...base, workerResources: { GPU: 2 } })).toBe(key(base));
    expect(key({ ...base, mounts: [MOUNTS[3]!] })).toBe(key(base));
    expect(key({ ...base, mounts: [MOUNTS[0]!] })).not.toBe(key(base));
    expect(key({ ...base, mounts: [MOUNTS[2]!], mountsUser: "alice" })).not.toBe(key({ ...base, mounts: [MOUNTS[2]!], mountsUser: "" }));
  });
});

describe("the stack check", () => {
  it("decodes its exit codes into a reason that names what is missing or too old", () => {
    expect(stackExitReason(64 + 4, "the image x")).toMatch(/^the image x cannot run a dask-gateway scheduler: it lacks dask-gateway;/);
    expect(stackExitReason(64 + 8 + 16, "the image x")).toContain(`its dask, distributed are older than dask ${MINIMUM_VERSIONS.dask}, distributed ${MINIMUM_VERSIONS.distributed}`);
    expect(stackExitReason(1, "x")).toBeNull();
    expect(stackExitReason(64, "x")).toBeNull();
    expect(stackExitReason(64 + 1 + 8, "x")).toBeNull(); // missing and too old at once: not the check's
    expect(stackExitReason(127, "the image z")).toMatch(/^the image z has no 'dask' command/);
    expect(missingDaskReason('task rejected: starting container failed: exec: "dask": executable file not found in $PATH', "the image y")).toMatch(/^the image y has no 'dask' command/);
    expect(missingDaskReason("task failed: non-zero exit (1)", "y")).toBeNull();
  });
});
