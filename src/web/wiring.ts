/**
 * Puts the page, the logs API and the operators' API together for gateway.ts: the middleware to mount before
 * the API, the routes to add to it, the hook that keeps a stopping cluster's log, and their start and stop.
 */
import { join } from "node:path";
import type Router from "@koa/router";
import type { Middleware } from "koa";
import { addAdminRoutes } from "../api/admin.js";
import { addLogRoutes } from "../api/logs.js";
import type { Authenticator } from "../auth/authenticator.js";
import type { Backend, BackendState, SchedulerLaunch } from "../backends/backend.js";
import type { ClusterManager } from "../clusters/manager.js";
import type { PoolCount } from "../clusters/pool.js";
import type { GatewayConfig } from "../config/config.js";
import { LogArchive } from "../logs/archive.js";
import type { Logger } from "../logging.js";
import { CsrfTokens, csrfGuard } from "./csrf.js";
import { LiveHub } from "./live.js";
import { addWebRoutes, SIGN_IN_PATH, webMiddleware } from "./page.js";
import { UsageMeter } from "./usage.js";

export interface WebParts {
  /** Mounted before the dashboards and the API: the CSRF guard, then the page's files. */
  before: Middleware[];
  routes: Array<(router: Router) => void>;
  /** For the manager's beforeRemove: keeps the end of the scheduler's log (logs.kept_bytes 0: nothing). */
  keepLog(launch: SchedulerLaunch, state: BackendState): Promise<void>;
  start(): void;
  close(): Promise<void>;
}

export interface WebPartsDeps {
  config: GatewayConfig;
  auth: Authenticator;
  backend: Backend;
  pool: { enabled: boolean; counts(): PoolCount[] };
  log: Logger;
  manager: ClusterManager;
}

/** Builds the parts; nothing runs until start(). */
export function webParts(deps: WebPartsDeps): WebParts {
  const { config, auth, backend, log } = deps;
  const archive = new LogArchive({ dir: join(config.stateDir, "logs"), backend, keepBytes: config.web.keptLogBytes, retentionSeconds: config.clusters.stoppedRetention, log });
  const tokens = new CsrfTokens();
  const { manager } = deps;
  const live = new LiveHub(manager);
  const usage = new UsageMeter({ file: join(config.stateDir, "usage.json"), manager, keepDays: config.web.usageDays, log });
  const publicOrigin = new URL(config.publicUrl).origin;
  const routes = [
    addLogRoutes({ manager, auth, backend, archive, maxStreams: config.web.maxLogStreams, log }),
    addAdminRoutes({ manager, auth, backend, pool: deps.pool, poolSettings: config.pool, usage }),
  ];
  if (config.web.enabled) {
    routes.push(addWebRoutes({ auth, tokens, live, sessionMaxAge: config.web.sessionMaxAge, secureCookies: config.publicUrl.startsWith("https:") }));
  }
  return {
    before: [csrfGuard(auth, tokens, SIGN_IN_PATH, publicOrigin), ...(config.web.enabled ? [webMiddleware()] : [])],
    routes,
    keepLog: (launch, state) => (config.web.keptLogBytes > 0 ? archive.keep(launch, state) : Promise.resolve()),
    start() {
      archive.start();
      usage.start();
    },
    async close() {
      live.close();
      archive.close();
      await usage.close();
    },
  };
}
