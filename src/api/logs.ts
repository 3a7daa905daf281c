/**
 * The logs extension beside `/events` (the Python client never calls it): which components of a cluster
 * have a log, and one component's log as timestamped text, with `tail`, `since` and `follow`. Owner and
 * admins only. A follower is ended cleanly once its component has ended, and everything it held is
 * released when its client leaves; reads at once are bounded by logs.max_streams.
 */
import { PassThrough, type Readable } from "node:stream";
import type Router from "@koa/router";
import type { Context } from "koa";
import type { Authenticator } from "../auth/authenticator.js";
import type { Backend, LogComponent } from "../backends/backend.js";
import type { ClusterManager } from "../clusters/manager.js";
import { PublicError } from "../errors.js";
import { Job, publicStatus, type ClusterRecord } from "../clusters/model.js";
import type { LogArchive } from "../logs/archive.js";
import { parseLogQuery } from "../logs/lines.js";
import type { LogComponentInfo } from "../web/wire.js";
import type { Logger } from "../logging.js";
import { authenticateUser } from "./auth-middleware.js";
import { findOwned } from "./routes.js";

export interface LogRouteDeps {
  manager: ClusterManager;
  auth: Authenticator;
  backend: Backend;
  archive: LogArchive;
  maxStreams: number;
  log: Logger;
  /** How often a follower checks whether its component has ended (shortened in tests). */
  checkMs?: number;
}


const WORKER_NAME = /^[0-9a-f]{32}$/;
/** After its component ends, a follower gets this long for the last lines before it ends. */
const END_GRACE_MS = 1_500;
/** The Retry-After of a read refused at logs.max_streams: reads end as their clients leave, so soon. */
const RETRY_SECONDS = 5;

/** Adds the two log endpoints to the API router. */
export function addLogRoutes(deps: LogRouteDeps): (router: Router) => void {
  let streams = 0;
  return (router) => {
    router.get("/api/v1/clusters/:name/logs", async (ctx) => {
      const cluster = findOwned(deps.manager, ctx.params.name!, await authenticateUser(ctx, deps.auth), "view");
      ctx.body = { name: cluster.name, status: publicStatus(cluster.status, cluster.target), components: await components(deps, cluster) };
    });

    router.get("/api/v1/clusters/:name/logs/:component", async (ctx) => {
      const cluster = findOwned(deps.manager, ctx.params.name!, await authenticateUser(ctx, deps.auth), "view");
      const query = parseLogQuery(ctx.query, Date.now());
      if (!query.ok) throw new PublicError(422, query.error);
      const component = componentOf(cluster, ctx.params.component!);
      if (streams >= deps.maxStreams) throw new PublicError(429, `${streams} logs are being read, the limit set by logs.max_streams; try again shortly`, RETRY_SECONDS);
      streams++;
      let source: Readable | null = null;
      try {
        source = ended(cluster)
          ? (component.kind === "scheduler" ? await deps.archive.open(cluster.name, query) : null)
          : ((await deps.backend.logs?.(deps.manager.schedulerLaunch(cluster), cluster.state, component, query)) ?? null);
      } finally {
        if (!source) streams--;
      }
      if (!source) throw new PublicError(404, `Cluster ${cluster.name} has no log for ${component.kind === "scheduler" ? "its scheduler" : `worker ${component.name}`}`);
      respond(ctx, source, query.follow ? () => componentEnded(deps.manager, cluster.name, component) : null, deps, () => streams--);
    });
  };
}

/** The scheduler first, then workers: live ones, then ended ones whose logs remain. */
async function components(deps: LogRouteDeps, cluster: ClusterRecord): Promise<LogComponentInfo[]> {
  if (ended(cluster)) {
    return (await deps.archive.has(cluster.name)) ? [{ name: "scheduler", kind: "scheduler", live: false, kept: true }] : [];
  }
  const names = (await deps.backend.logComponents?.(deps.manager.schedulerLaunch(cluster), cluster.state).catch(() => [])) ?? [];
  const found: LogComponentInfo[] = names.map((name) => {
    if (name === "scheduler") return { name, kind: "scheduler", live: cluster.status < Job.CLOSING, kept: false };
    const worker = cluster.workers.get(name);
    return { name, kind: "worker", live: worker !== undefined && worker.status < Job.CLOSING && worker.target === Job.RUNNING, kept: false };
  });
  const rank = (c: LogComponentInfo) => (c.kind === "scheduler" ? 0 : c.live ? 1 : 2);
  return found.sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
}

function ended(cluster: ClusterRecord): boolean {
  return cluster.status >= Job.STOPPED;
}

/** `scheduler` or a worker's name (32 hex digits); anything else is no component (404). */
function componentOf(cluster: ClusterRecord, name: string): LogComponent {
  if (name === "scheduler") return { kind: "scheduler", name, state: cluster.state };
  if (!WORKER_NAME.test(name)) throw new PublicError(404, `Cluster ${cluster.name} has no component '${name}': use 'scheduler' or a worker name from GET /api/v1/clusters/${cluster.name}/logs`);
  return { kind: "worker", name, state: cluster.workers.get(name)?.state ?? {} };
}

/** Whether a followed component is gone: its cluster stopping or forgotten, or the worker stopped. */
function componentEnded(manager: ClusterManager, name: string, component: LogComponent): boolean {
  const cluster = manager.get(name);
  if (!cluster || cluster.status >= Job.CLOSING) return true;
  if (component.kind === "scheduler") return false;
  const worker = cluster.workers.get(component.name);
  return !worker || worker.status >= Job.CLOSING || worker.target !== Job.RUNNING;
}

/**
 * Streams the log as the body. The source is piped (so a slow client slows the reading) through a pass-through
 * that Koa destroys when the client leaves; its `close` releases the source, the timer and the slot.
 */
function respond(ctx: Context, source: Readable, hasEnded: (() => boolean) | null, deps: LogRouteDeps, release: () => void): void {
  const body = new PassThrough({ highWaterMark: 64 * 1024 });
  let timer: NodeJS.Timeout | undefined;
  let grace: NodeJS.Timeout | undefined;
  const finish = () => {
    source.unpipe(body);
    source.destroy();
    body.end();
  };
  source.on("error", (err) => {
    deps.log.warn({ err: err.message, path: ctx.path }, "log stream failed");
    finish();
  });
  body.once("close", () => {
    clearInterval(timer);
    clearTimeout(grace);
    source.unpipe(body);
    source.destroy();
    release();
  });
  if (hasEnded) {
    timer = setInterval(() => {
      if (grace || !hasEnded()) return;
      grace = setTimeout(finish, END_GRACE_MS);
    }, deps.checkMs ?? 1_000);
  }
  source.pipe(body);
  ctx.status = 200;
  ctx.type = "text/plain; charset=utf-8";
  ctx.set("Cache-Control", "no-store");
  ctx.set("X-Content-Type-Options", "nosniff");
  if (hasEnded) ctx.set("X-Accel-Buffering", "no"); // reverse proxies pass lines on as they come
  ctx.body = body;
}
