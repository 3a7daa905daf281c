/**
 * The typed, resolved configuration the rest of the gateway reads. Derived defaults (timeouts from the
 * heartbeat period, the state directory, addresses) are computed here and nowhere else.
 */
import { homedir, hostname } from "node:os";
import { join } from "node:path";
import { ConfigError, type FlatConfig } from "./load.js";
import { clientAddressOf } from "../proxy/client-address.js";

export interface HostPort {
  host: string;
  port: number;
}

export interface GatewayConfig {
  address: HostPort;
  schedulerAddress: HostPort | null;
  publicUrl: string;
  /** Reverse proxies whose X-Forwarded-For is believed (checked: addresses or CIDR subnets). */
  trustedProxies: string[];
  apiUrl: string | null;
  stateDir: string;
  tls: { cert: string; key: string } | null;
  log: { level: string; format: "auto" | "json" | "pretty" };
  relay: "auto" | "splice" | "js";
  auth: {
    mode: "password" | "users";
    password: string | null;
    passwordFile: string | null;
    usersFile: string | null;
    adminUsers: string[];
    cookieMaxAge: number;
    /** Wrong passwords per client address and user name within failureWindow seconds (0: no limit). */
    maxFailures: number;
    failureWindow: number;
  };
  backend: "local" | "swarm";
  local: { daskCommand: string | null; niceness: number };
  swarm: {
    network: string;
    image: string;
    registry: string | null;
    registryAuthFile: string | null;
    schedulerConstraints: string[];
    workerNodeLabel: string | null;
    workersPerNode: number;
    reservedCores: number;
    reservedMemoryGiB: number;
    /** Seconds; see swarm.node_backoff. */
    nodeBackoff: number;
    gatewayId: string;
    recordsKeyFile: string | null;
  };
  clusters: {
    heartbeatPeriod: number;
    heartbeatTimeout: number;
    startTimeout: number;
    workerStartTimeout: number;
    workerStartFailureLimit: number;
    checkPeriod: number;
    stoppedRetention: number;
    adaptivePeriod: number;
    stopOnShutdown: boolean;
    optionsFile: string | null;
    orphanTimeout: number;
  };
  pool: {
    /** Ready schedulers to keep per pool key; 0: no pool. */
    size: number;
    /** Bound on warm plus starting schedulers; null: size x the number of keys. */
    maxSchedulers: number | null;
    /** Seconds; 0: never replaced for age. */
    maxAge: number;
    /** cluster_options mappings, validated against the options catalog at startup. */
    optionSets: Record<string, unknown>[];
    refillParallel: number;
    /** Seconds, doubled per consecutive failure. */
    failureBackoff: number;
  };
  web: {
    enabled: boolean;
    /** Seconds without use before a page session ends. */
    sessionMaxAge: number;
    usageDays: number;
    keptLogBytes: number;
    maxLogStreams: number;
  };
  limits: {
    clusterMaxWorkers: number | null;
    clusterMaxCores: number | null;
    clusterMaxMemoryGiB: number | null;
    userMaxClusters: number | null;
    userMaxWorkers: number | null;
    maxBodyBytes: number;
    maxConnections: number;
    listenBacklog: number;
    helloTimeout: number;
    createRate: number;
  };
}

/** Resolves flat settings into the typed configuration, validating cross-setting rules. */
export function resolveConfig(flat: FlatConfig, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const str = (k: string) => flat.get(k) as string | null;
  const num = (k: string) => flat.get(k) as number | null;
  const heartbeatPeriod = num("clusters.heartbeat_period")!;
  const heartbeatTimeout = num("clusters.heartbeat_timeout") ?? 2 * heartbeatPeriod;
  const startTimeout = num("clusters.start_timeout")!;
  const workerStartTimeout = num("clusters.worker_start_timeout")!;
  if (heartbeatTimeout <= heartbeatPeriod) {
    throw new ConfigError(`clusters.heartbeat_timeout (${heartbeatTimeout}) must be longer than clusters.heartbeat_period (${heartbeatPeriod})`);
  }
  const address = parseHostPort(str("address")!, "address");
  const schedulerAddress = str("scheduler_address") ? parseHostPort(str("scheduler_address")!, "scheduler_address") : null;
  const tlsCert = str("tls.cert");
  const tlsKey = str("tls.key");
  if (Boolean(tlsCert) !== Boolean(tlsKey)) throw new ConfigError("tls.cert and tls.key must be set together");
  const scheme = tlsCert ? "https" : "http";
  const publicHost = ["0.0.0.0", "::", ""].includes(address.host) ? hostname() : address.host;
  return {
    address,
    schedulerAddress,
    publicUrl: httpUrl(str("public_url") ?? `${scheme}://${publicHost}:${address.port}`, "public_url"),
    trustedProxies: checkedProxies(flat.get("trusted_proxies") as string[]),
    apiUrl: str("api_url") ? httpUrl(str("api_url")!, "api_url") : null,
    stateDir: str("state_dir") ?? join(env.XDG_STATE_HOME || join(homedir(), ".local", "state"), "dask-gateway-swarm"),
    tls: tlsCert && tlsKey ? { cert: tlsCert, key: tlsKey } : null,
    log: { level: str("log.level")!, format: str("log.format") as GatewayConfig["log"]["format"] },
    relay: str("relay") as GatewayConfig["relay"],
    auth: {
      mode: str("auth.mode") as GatewayConfig["auth"]["mode"],
      password: str("auth.password"),
      passwordFile: str("auth.password_file"),
      usersFile: str("auth.users_file"),
      adminUsers: flat.get("auth.admin_users") as string[],
      cookieMaxAge: num("auth.cookie_max_age")!,
      maxFailures: num("auth.max_failures")!,
      failureWindow: num("auth.failure_window")!,
    },
    backend: str("backend") as GatewayConfig["backend"],
    local: { daskCommand: str("local.dask_command"), niceness: num("local.niceness")! },
    swarm: {
      network: str("swarm.network")!,
      image: str("swarm.image")!,
      registry: str("swarm.registry"),
      registryAuthFile: str("swarm.registry_auth_file"),
      schedulerConstraints: flat.get("swarm.scheduler_constraint") as string[],
      workerNodeLabel: str("swarm.worker_node_label"),
      workersPerNode: num("swarm.workers_per_node")!,
      reservedCores: num("swarm.reserved_cores")!,
      reservedMemoryGiB: num("swarm.reserved_memory")!,
      nodeBackoff: num("swarm.node_backoff")!,
      gatewayId: str("swarm.gateway_id")!,
      recordsKeyFile: str("swarm.records_key_file"),
    },
    clusters: {
      heartbeatPeriod,
      heartbeatTimeout,
      startTimeout,
      workerStartTimeout,
      workerStartFailureLimit: num("clusters.worker_start_failure_limit")!,
      checkPeriod: num("clusters.check_period") ?? Math.min(15, Math.min(heartbeatTimeout, startTimeout, workerStartTimeout) / 2),
      stoppedRetention: num("clusters.stopped_retention")!,
      adaptivePeriod: num("clusters.adaptive_period")!,
      stopOnShutdown: flat.get("clusters.stop_on_shutdown") as boolean,
      optionsFile: str("clusters.options_file"),
      orphanTimeout: num("clusters.orphan_timeout")!,
    },
    pool: resolvePool(flat),
    web: {
      enabled: flat.get("web.enabled") as boolean,
      sessionMaxAge: num("web.session_max_age")!,
      usageDays: num("web.usage_days")!,
      keptLogBytes: num("logs.kept_bytes")!,
      maxLogStreams: num("logs.max_streams")!,
    },
    limits: {
      clusterMaxWorkers: num("limits.cluster_max_workers"),
      clusterMaxCores: num("limits.cluster_max_cores"),
      clusterMaxMemoryGiB: num("limits.cluster_max_memory"),
      userMaxClusters: num("limits.user_max_clusters"),
      userMaxWorkers: num("limits.user_max_workers"),
      maxBodyBytes: num("limits.max_body_bytes")!,
      maxConnections: num("limits.max_connections")!,
      listenBacklog: num("limits.listen_backlog")!,
      helloTimeout: num("limits.hello_timeout")!,
      createRate: num("limits.create_rate")!,
    },
  };
}

/** The pool settings; the option sets are checked against the options catalog later, when it is loaded. */
function resolvePool(flat: FlatConfig): GatewayConfig["pool"] {
  const size = flat.get("pool.size") as number;
  const maxSchedulers = flat.get("pool.max_schedulers") as number | null;
  const sets = flat.get("pool.option_sets") as unknown[];
  sets.forEach((set, i) => {
    if (typeof set !== "object" || set === null || Array.isArray(set)) {
      throw new ConfigError(`pool.option_sets[${i}]: expected a mapping of cluster options (like {"worker_cores": 2}, or {} for the defaults), got ${JSON.stringify(set)}`);
    }
  });
  if (size > 0 && sets.length === 0) throw new ConfigError("pool.option_sets is empty while pool.size is above 0: list at least one option set ({} for the defaults), or set pool.size to 0");
  if (maxSchedulers !== null && size > 0 && maxSchedulers < size) {
    throw new ConfigError(`pool.max_schedulers (${maxSchedulers}) is below pool.size (${size}): not even one option set could be kept full`);
  }
  return {
    size,
    maxSchedulers,
    maxAge: flat.get("pool.max_age") as number,
    optionSets: sets as Record<string, unknown>[],
    refillParallel: flat.get("pool.refill_parallel") as number,
    failureBackoff: flat.get("pool.failure_backoff") as number,
  };
}

/** Parses `host:port`, `:port` or `[v6]:port`. */
export function parseHostPort(value: string, key: string): HostPort {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new ConfigError(`${key}: expected host:port, got ${JSON.stringify(value)}`);
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port };
}

function stripSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

/** An http(s) URL with a host, without its trailing slash; schedulers and clients cannot use anything else. */
function httpUrl(value: string, key: string): string {
  let url: URL | null = null;
  try {
    url = new URL(value);
  } catch {
    // Reported below.
  }
  if (!url || !["http:", "https:"].includes(url.protocol) || !url.hostname) {
    throw new ConfigError(`${key}: expected an http:// or https:// URL with a host, got ${JSON.stringify(value)}`);
  }
  return stripSlash(value);
}

/** The trusted_proxies list, refused at startup when an entry is neither an address nor a CIDR subnet. */
function checkedProxies(entries: string[]): string[] {
  try {
    clientAddressOf(entries);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  return entries;
}
