/**
 * Wires the parts together: configuration, users, the cluster manager and its backend, the Koa API,
 * the dashboard proxy, and the one public port that multiplexes them.
 */
import { mkdirSync, readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createApp } from "./api/app.js";
import { Authenticator } from "./auth/authenticator.js";
import { resolveSharedPassword, type SharedPassword } from "./auth/shared-password.js";
import { FailureThrottle } from "./auth/throttle.js";
import { sharedPasswordStore, usersFileStore, type User, type UserStore } from "./auth/users.js";
import { mayAct } from "./api/auth-middleware.js";
import type { Backend } from "./backends/backend.js";
import { LocalBackend } from "./backends/local/local-backend.js";
import { killAllSync } from "./backends/local/processes.js";
import { ClusterManager } from "./clusters/manager.js";
import { WarmPool, type PoolOptionSet } from "./clusters/pool.js";
import { fileStore, migratingStore, type ClusterStore } from "./clusters/store.js";
import type { GatewayConfig } from "./config/config.js";
import { ConfigError } from "./config/load.js";
import type { Logger } from "./logging.js";
import { Metrics } from "./metrics.js";
import { loadCatalog, type OptionsCatalog } from "./options/catalog.js";
import { schedulerNeedsUser } from "./options/mounts.js";
import { clientAddressOf } from "./proxy/client-address.js";
import { dashboardMiddleware, dashboardUpgrade } from "./proxy/dashboard-route.js";
import { PublicListener } from "./proxy/public-listener.js";
import { selectRelay } from "./proxy/relay.js";
import { VERSION } from "./version.js";
import { webParts } from "./web/wiring.js";

/** At shutdown, requests under way get this long to be answered before their connections are closed. */
const SHUTDOWN_REQUEST_GRACE_MS = 2_000;

export interface RunningGateway {
  /** The bound public address (the port is real even when 0 was configured). */
  address: AddressInfo;
  url: string;
  password: SharedPassword | null;
  manager: ClusterManager;
  close(): Promise<void>;
}

/** Starts a gateway from a resolved configuration. */
export async function startGateway(config: GatewayConfig, log: Logger): Promise<RunningGateway> {
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  const password = config.auth.mode === "password"
    ? resolveSharedPassword(config.auth.password, config.auth.passwordFile, config.stateDir)
    : null;
  const store: UserStore = password
    ? sharedPasswordStore(password.password, config.auth.adminUsers)
    : usersFileStore(requireSetting(config.auth.usersFile, "auth.users_file is required when auth.mode is users"), config.auth.adminUsers);
  const authLog = log.child({ component: "auth" });
  const throttle = new FailureThrottle({
    maxFailures: config.auth.maxFailures,
    windowSeconds: config.auth.failureWindow,
    events: {
      failed: () => metrics.authFailures.inc(),
      refused: () => metrics.authThrottled.inc(),
      throttled: (user, address, seconds) =>
        authLog.warn({ user, address, failures: config.auth.maxFailures, seconds }, "too many wrong passwords: this user name is refused from this address for a while"),
    },
  });
  const auth = new Authenticator(store, config.auth.cookieMaxAge, Date.now, throttle);
  const catalog = loadCatalog(config);
  const poolSets = poolOptionSets(config, catalog); // checked before the backend does anything
  const backend = await createBackend(config, log);

  let apiUrl = config.apiUrl ?? "";
  // Read at each scrape, once the manager and the pool exist.
  const metrics: Metrics = new Metrics(() => manager.statusCounts(), () => pool.counts());
  const pool: WarmPool = new WarmPool({ settings: config.pool, sets: poolSets, log: log.child({ component: "pool" }), metrics });
  const manager: ClusterManager = new ClusterManager({
    backend, log: log.child({ component: "clusters" }), clusters: config.clusters, limits: config.limits, catalog, pool,
    store: recordStore(config, backend, log),
    beforeRemove: (launch, state) => web.keepLog(launch, state),
    get apiUrl() {
      return apiUrl;
    },
  });
  const clientAddress = clientAddressOf(config.trustedProxies);
  const dashboards = {
    auth,
    clientAddress,
    target: (name: string) => manager.dashboardTarget(name),
    exists: (name: string) => manager.get(name) !== undefined,
    canAct: (user: User, name: string) => {
      const cluster = manager.get(name);
      return cluster !== undefined && mayAct(user, cluster);
    },
  };
  const web = webParts({ config, auth, backend, pool, log: log.child({ component: "web" }), manager });
  const app = createApp({
    manager, auth, log, metrics, clientAddress, version: VERSION, maxBodyBytes: config.limits.maxBodyBytes,
    before: [...web.before, dashboardMiddleware(dashboards)],
    extraRoutes: web.routes,
  });
  const httpServer = http.createServer({ maxHeaderSize: 16 * 1024 }, app.callback());
  // node:https (and tls with it) is loaded only when the API is served over HTTPS.
  const httpsServer = config.tls
    ? (await import("node:https")).createServer({ cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) }, app.callback())
    : undefined;
  for (const server of [httpServer, httpsServer]) server?.on("upgrade", dashboardUpgrade(dashboards));

  const relay = relayPath(config, log);
  const listenerOptions = {
    relay,
    resolveScheduler: (name: string) => manager.schedulerTarget(name),
    onSchedulerConnection: (name: string, delta: 1 | -1) => manager.clientConnections(name, delta),
    onOutcome: (outcome: string) => metrics.connections.inc({ outcome }),
    helloTimeoutMs: config.limits.helloTimeout * 1000,
    maxConnections: config.limits.maxConnections,
    backlog: config.limits.listenBacklog,
    log: log.child({ component: "proxy" }),
  };
  const listener = new PublicListener({ ...listenerOptions, httpServer, httpsServer });
  const address = await listener.listen(config.address.port, config.address.host);
  const schedulerListener = config.schedulerAddress ? new PublicListener(listenerOptions) : undefined;
  if (schedulerListener && config.schedulerAddress) await schedulerListener.listen(config.schedulerAddress.port, config.schedulerAddress.host);

  apiUrl ||= defaultApiUrl(config, address);
  const url = config.address.port === 0 ? config.publicUrl.replace(/:0$/, `:${address.port}`) : config.publicUrl;
  await manager.start();
  web.start();
  log.info({ url, backend: backend.kind, auth: config.auth.mode, apiUrl }, "gateway started");

  let closed = false;
  return {
    address, url, password, manager,
    async close() {
      if (closed) return;
      closed = true;
      await web.close(); // ends the live streams, so that their connections do not hold the shutdown up
      const listenersClosed = Promise.all([listener.close(), schedulerListener?.close()]);
      // The listeners count the HTTP connections they handed over: idle keep-alive ones (a scheduler's, a
      // client's) would hold them open, and the old gateway's name in DNS, until their peers let go.
      httpServer.closeIdleConnections();
      httpsServer?.closeIdleConnections();
      await Promise.race([listenersClosed, sleep(SHUTDOWN_REQUEST_GRACE_MS)]);
      httpServer.closeAllConnections();
      httpsServer?.closeAllConnections();
      await listenersClosed;
      await manager.close();
      await backend.close();
      // Clusters left running on purpose (stop_on_shutdown false) are adopted by the next start.
      if (config.clusters.stopOnShutdown) killAllSync();
      log.info("gateway stopped");
    },
  };
}

async function createBackend(config: GatewayConfig, log: Logger): Promise<Backend> {
  if (config.backend === "swarm") {
    const { SwarmBackend } = await import("./backends/swarm/swarm-backend.js");
    return SwarmBackend.create(config, log.child({ component: "swarm" }));
  }
  return new LocalBackend({ clustersDir: join(config.stateDir, "clusters"), volumesDir: join(config.stateDir, "volumes"), daskCommand: config.local.daskCommand, niceness: config.local.niceness });
}

/** The relay path the setting asks for, logged; relay=splice without the native addon is a configuration error. */
function relayPath(config: GatewayConfig, log: Logger) {
  try {
    const { path, why } = selectRelay(config.relay);
    log.info({ relay: path.name, why }, path.name === "splice" ? "scheduler connections relayed by splice(2), zero-copy" : "scheduler connections relayed in JavaScript");
    return path;
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}

/** The pool's option sets, normalized by the catalog; an invalid one is a configuration error naming it. */
function poolOptionSets(config: GatewayConfig, catalog: OptionsCatalog): PoolOptionSet[] {
  if (config.pool.size === 0) return [];
  return config.pool.optionSets.map((requested, i) => {
    const parsed = catalog.parse(requested);
    if (!parsed.ok) throw new ConfigError(`pool.option_sets[${i}] (${JSON.stringify(requested)}): ${parsed.error}`);
    if (schedulerNeedsUser(parsed.config.mounts ?? [])) {
      throw new ConfigError(`pool.option_sets[${i}] (${JSON.stringify(requested)}) mounts a user_volume on the scheduler, which a warm scheduler cannot have before a user claims it; make the mount workers_only or leave this set out`);
    }
    return { options: parsed.options, config: parsed.config };
  });
}

/** The backend's own record store if it has one (records from state_dir move into it), else state_dir. */
function recordStore(config: GatewayConfig, backend: Backend, log: Logger): ClusterStore {
  const onBadRecord = (cluster: string, err: Error) =>
    log.warn({ cluster, err: err.message }, "unreadable cluster record: the cluster is neither adopted nor removed");
  const local = fileStore(join(config.stateDir, "records"), onBadRecord);
  const own = backend.recordStore?.(onBadRecord);
  if (own) return migratingStore(own, local);
  if (config.backend === "swarm") {
    log.warn("cluster records are kept in state_dir on this machine only: set swarm.records_key_file (make up does) so that a gateway moved to another manager re-adopts its clusters");
  }
  return local;
}

/** Local schedulers reach the gateway over plain HTTP on the loopback (the public port speaks both). */
function defaultApiUrl(config: GatewayConfig, address: AddressInfo): string {
  if (config.backend === "local") {
    const host = ["0.0.0.0", "::", ""].includes(config.address.host) ? "127.0.0.1" : config.address.host;
    return `http://${host.includes(":") ? `[${host}]` : host}:${address.port}/api`;
  }
  return `${config.publicUrl}/api`;
}

function requireSetting(value: string | null, message: string): string {
  if (!value) throw new Error(message);
  return value;
}
