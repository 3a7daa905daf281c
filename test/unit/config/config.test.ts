import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { resolveConfig } from "../../../src/config/config.js";
import { ConfigError, loadSettings, parseArgs } from "../../../src/config/load.js";

const load = (file?: string, env: NodeJS.ProcessEnv = {}, flags: Record<string, string> = {}) =>
  resolveConfig(loadSettings(file, env, new Map(Object.entries(flags))), env);

describe("configuration", () => {
  it("starts with zero configuration", () => {
    const c = load();
    expect(c.address).toEqual({ host: "0.0.0.0", port: 8000 });
    expect(c.backend).toBe("local");
    expect(c.clusters.heartbeatTimeout).toBe(30);
    expect(c.auth.mode).toBe("password");
    expect(c.swarm.nodeBackoff).toBe(60);
  });

  it("layers file < env < flags", () => {
    const dir = mkdtempSync(join(tmpdir(), "cfg-"));
    const file = join(dir, "c.yaml");
    writeFileSync(file, "address: 127.0.0.1:9000\nclusters:\n  heartbeat_period: 5\nlimits:\n  cluster_max_workers: 4\n");
    const c = load(file, { DGW_CLUSTERS_HEARTBEAT_PERIOD: "7" }, { "limits.cluster_max_workers": "6" });
    expect(c.address.port).toBe(9000);
    expect(c.clusters.heartbeatPeriod).toBe(7);
    expect(c.limits.clusterMaxWorkers).toBe(6);
  });

  it("names the bad setting and where it came from", () => {
    expect(() => load(undefined, { DGW_CLUSTERS_HEARTBEAT_PERIOD: "soon" })).toThrow(/DGW_CLUSTERS_HEARTBEAT_PERIOD: expected a number/);
    expect(() => load(undefined, {}, { backend: "k8s" })).toThrow(/--backend: expected one of local, swarm/);
    expect(() => load(undefined, {}, { "limits.user_max_clusters": "1.5" })).toThrow(ConfigError);
    expect(() => load(undefined, { DGW_SWARM_NODE_BACKOFF: "0" })).toThrow(/DGW_SWARM_NODE_BACKOFF/);
    expect(() => load(undefined, {}, { address: "nowhere" })).toThrow(/address: expected host:port/);
    expect(() => load(undefined, {}, { api_url: "http://:8000/api" })).toThrow(/api_url: expected an http:\/\/ or https:\/\/ URL with a host/);
    expect(() => load(undefined, {}, { public_url: "gateway:8000" })).toThrow(/public_url: expected/);
    expect(() => load(undefined, { DGW_TRUSTED_PROXIES: "10.0.0.5,nginx" })).toThrow(/trusted_proxies: 'nginx' is not an IP address or a CIDR subnet/);
    expect(load(undefined, { DGW_TRUSTED_PROXIES: "10.0.0.5, 172.16.0.0/12" }).trustedProxies).toEqual(["10.0.0.5", "172.16.0.0/12"]);
    expect(() => load(undefined, {}, { "clusters.heartbeat_timeout": "1", "clusters.heartbeat_period": "5" })).toThrow(/heartbeat_timeout/);
    const dir = mkdtempSync(join(tmpdir(), "cfg-"));
    const file = join(dir, "c.yaml");
    writeFileSync(file, "heartbeat_period: 5\n");
    expect(() => load(file)).toThrow(/unknown setting 'heartbeat_period'.*did you mean clusters.heartbeat_period/);
  });

  it("has a warm pool of one default scheduler by default, and names what is wrong with pool settings", () => {
    expect(load().pool).toMatchObject({ size: 1, maxSchedulers: null, maxAge: 3600, optionSets: [{}], refillParallel: 2 });
    expect(load(undefined, { DGW_POOL_SIZE: "0" }).pool.size).toBe(0);
    expect(load(undefined, { DGW_POOL_OPTION_SETS: '[{}, {"worker_cores": 2}]' }).pool.optionSets).toEqual([{}, { worker_cores: 2 }]);
    const dir = mkdtempSync(join(tmpdir(), "cfg-"));
    const file = join(dir, "c.yaml");
    writeFileSync(file, "pool:\n  size: 2\n  option_sets:\n    - {}\n    - {environment: {PROFILE: geo}}\n");
    expect(load(file).pool).toMatchObject({ size: 2, optionSets: [{}, { environment: { PROFILE: "geo" } }] });
    expect(() => load(undefined, { DGW_POOL_SIZE: "-1" })).toThrow(/DGW_POOL_SIZE: must be at least 0/);
    expect(() => load(undefined, {}, { "pool.option_sets": "{nope" })).toThrow(/--pool.option_sets: expected JSON/);
    expect(() => load(undefined, {}, { "pool.option_sets": "{}" })).toThrow(/--pool.option_sets: expected a list/);
    expect(() => load(undefined, {}, { "pool.option_sets": "[1]" })).toThrow(/pool.option_sets\[0\]: expected a mapping of cluster options/);
    expect(() => load(undefined, {}, { "pool.option_sets": "[]" })).toThrow(/pool.option_sets is empty while pool.size is above 0/);
    expect(() => load(undefined, {}, { "pool.size": "3", "pool.max_schedulers": "2" })).toThrow(/pool.max_schedulers \(2\) is below pool.size \(3\)/);
    expect(() => load(undefined, {}, { "pool.refill_parallel": "0" })).toThrow(/--pool.refill_parallel: must be at least 1/);
  });

  it("parses flags and commands", () => {
    const args = parseArgs(["serve", "-c", "x.yaml", "--address=:1", "--clusters.stop_on_shutdown", "--log.level", "debug"]);
    expect(args.command).toBe("serve");
    expect(args.config).toBe("x.yaml");
    expect(Object.fromEntries(args.flags)).toEqual({ address: ":1", "clusters.stop_on_shutdown": "true", "log.level": "debug" });
  });
});
