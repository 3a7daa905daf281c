/**
 * The dask-gateway REST API (reference section 1), plus a few clearly separate extensions.
 * Handlers check every precondition at the edge and delegate every decision to the cluster manager.
 */
import { METHODS } from "node:http";
import Router from "@koa/router";
import type { Context } from "koa";
import type { Authenticator } from "../auth/authenticator.js";
import type { User } from "../auth/users.js";
import { ClusterManager } from "../clusters/manager.js";
import { PublicError } from "../errors.js";
import { CLUSTER_STATUSES, Job, clusterToWire, publicStatus, type ClusterRecord, type ClusterStatus } from "../clusters/model.js";
import type { HeartbeatMessage } from "../clusters/heartbeat.js";
import { pythonRepr } from "../options/fields.js";
import { authenticateUser, hasClusterToken, mayAct, Unauthorized } from "./auth-middleware.js";
import { validateSchema } from "./validate.js";
import type { Metrics } from "../metrics.js";

export interface RouteDeps {
  manager: ClusterManager;
  auth: Authenticator;
  version: string;
  metrics: Metrics;
}

/** Builds the router with every endpoint. */
export function apiRouter({ manager, auth, version, metrics }: RouteDeps): Router {
  // Every method Node parses counts as implemented: a known path with another method is 405, never 501.
  const router = new Router({ strict: true, methods: [...METHODS] });
  const user = (ctx: Context) => authenticateUser(ctx, auth);

  router.get("/api/health", (ctx) => {
    ctx.body = { status: "pass" };
  });
  router.get("/api/version", (ctx) => {
    ctx.body = { version };
  });

  router.get("/api/metrics", async (ctx) => {
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  });

  router.get("/api/v1/options", async (ctx) => {
    await user(ctx);
    ctx.body = { cluster_options: manager.optionsSpec() };
  });

  router.get("/api/v1/clusters/", async (ctx) => {
    const u = await user(ctx);
    const statuses = parseStatuses(ctx.query.status);
    ctx.body = Object.fromEntries(manager.list(u.name, statuses).map((c) => [c.name, clusterToWire(c)]));
  });

  router.post("/api/v1/clusters/", async (ctx) => {
    const u = await user(ctx);
    const body = requireBody(ctx, "CreateClusterRequest", true) as { cluster_options?: unknown };
    const cluster = await manager.create(u, body.cluster_options ?? {});
    ctx.status = 201;
    ctx.body = { name: cluster.name };
  });

  router.get("/api/v1/clusters/:name", async (ctx) => {
    const u = await user(ctx);
    const cluster = findOwned(manager, ctx.params.name!, u, "view");
    if (queryFlag(ctx.query.wait)) await manager.waitReady(cluster);
    ctx.body = clusterToWire(cluster);
  });

  router.delete("/api/v1/clusters/:name", async (ctx) => {
    const byScheduler = manager.forScheduler(ctx.params.name!);
    if (hasClusterToken(ctx, byScheduler)) {
      // The scheduler itself asks to stop: its idle timeout expired.
      manager.requestStop(byScheduler!, Job.STOPPED, "the scheduler asked to stop (idle timeout)");
    } else {
      const cluster = manager.get(ctx.params.name!);
      const u = await user(ctx);
      if (cluster) {
        assertMayAct(u, cluster, "stop");
        manager.requestStop(cluster, Job.STOPPED, u.name === cluster.user ? "stopped by its user" : `stopped by admin ${u.name}`);
      }
    }
    ctx.status = 204;
  });

  router.post("/api/v1/clusters/:name/scale", async (ctx) => {
    const u = await user(ctx);
    const cluster = findOwned(manager, ctx.params.name!, u, "scale");
    const body = readBody(ctx);
    const count = (body as { count?: unknown } | undefined)?.count;
    if (validateSchema("ScaleRequest", body) !== null) {
      throw new PublicError(422, `Scale expects a non-negative integer, got ${pythonRepr(count)}`);
    }
    ctx.body = await manager.scale(cluster, count as number);
  });

  router.post("/api/v1/clusters/:name/adapt", async (ctx) => {
    const u = await user(ctx);
    const cluster = findOwned(manager, ctx.params.name!, u, "adapt");
    const body = requireBody(ctx, "AdaptRequest") as { minimum?: number | null; maximum?: number | null; active?: boolean };
    ctx.body = await manager.adapt(cluster, body.minimum ?? null, body.maximum ?? null, body.active ?? true);
  });

  router.post("/api/v1/clusters/:name/heartbeat", async (ctx) => {
    // Warm schedulers of the pool heartbeat too; only their own token finds them.
    const cluster = manager.forScheduler(ctx.params.name!);
    if (!hasClusterToken(ctx, cluster)) throw new Unauthorized("token", "Unauthorized");
    manager.heartbeat(cluster!, requireBody(ctx, "Heartbeat") as HeartbeatMessage);
    ctx.status = 200;
    ctx.body = ""; // 200 with an empty body, as the reference answers (null would make Koa send 204)
  });

  // ---- Extensions: not in the reference protocol; the Python client never calls them. -------

  router.get("/api/v1/clusters/:name/events", async (ctx) => {
    const u = await user(ctx);
    const c = findOwned(manager, ctx.params.name!, u, "view");
    ctx.body = { name: c.name, status: publicStatus(c.status, c.target), reason: c.reason, versions: c.versions ?? null, events: c.events };
  });

  router.get("/api/v1/whoami", async (ctx) => {
    const u = await user(ctx);
    ctx.body = { name: u.name, admin: u.admin };
  });

  router.get("/api/v1/admin/clusters", async (ctx) => {
    requireAdmin(await user(ctx));
    const statuses = parseStatuses(ctx.query.status);
    ctx.body = Object.fromEntries(manager.list(null, statuses).map((c) => [c.name, { user: c.user, cluster: clusterToWire(c) }]));
  });

  router.delete("/api/v1/admin/clusters/:name", async (ctx) => {
    const u = requireAdmin(await user(ctx));
    const cluster = manager.get(ctx.params.name!);
    if (cluster) manager.requestStop(cluster, Job.STOPPED, `stopped by admin ${u.name}`);
    ctx.status = 204;
  });

  return router;
}

/** Looks a cluster up and checks the caller may act on it: 404 before 403, as in the reference. */
export function findOwned(manager: ClusterManager, name: string, user: User, action: string): ClusterRecord {
  const cluster = manager.get(name);
  if (!cluster) throw new PublicError(404, `Cluster ${name} not found`);
  assertMayAct(user, cluster, action);
  return cluster;
}

function assertMayAct(user: User, cluster: ClusterRecord, action: string): void {
  if (!mayAct(user, cluster)) throw new PublicError(403, `User ${user.name} lacks permissions to ${action} cluster ${cluster.name}`);
}

export function requireAdmin(user: User): User {
  if (!user.admin) throw new PublicError(403, `User ${user.name} is not an admin`);
  return user;
}

/** `?status=running,PENDING`: case-insensitive names; an unknown one is a 422 naming it. */
function parseStatuses(raw: string | string[] | undefined): ClusterStatus[] | undefined {
  if (raw === undefined) return undefined;
  const names = (Array.isArray(raw) ? raw.join(",") : raw).split(",").map((s) => s.trim()).filter(Boolean);
  return names.map((name) => {
    const upper = name.toUpperCase() as ClusterStatus;
    if (!CLUSTER_STATUSES.includes(upper)) throw new PublicError(422, `'${name}' is not a valid ClusterStatus`);
    return upper;
  });
}

/** The reference's flag parsing: absent false, empty true, an integer by its value, else false. */
function queryFlag(raw: string | string[] | undefined): boolean {
  if (raw === undefined) return false;
  const value = Array.isArray(raw) ? raw[raw.length - 1]! : raw;
  if (value === "") return true;
  return /^[+-]?\d+$/.test(value.trim()) ? Number(value) !== 0 : false;
}

/** Whether the request carries a body at all (a JSON `{}` is a body; nothing is not). */
export function hasRequestBody(ctx: Context): boolean {
  return Number(ctx.get("content-length") || 0) > 0 || ctx.get("transfer-encoding") !== "";
}

function readBody(ctx: Context): unknown {
  if (!hasRequestBody(ctx)) return undefined;
  const body = (ctx.request as { body?: unknown }).body;
  return body === "" ? undefined : body;
}

/**
 * The parsed JSON body, validated against a protocol schema; a 422 names the bad field. Without a body:
 * an empty object where the document makes the body optional (create), else a 422.
 */
function requireBody(ctx: Context, schema: string, optional = false): unknown {
  const raw = readBody(ctx);
  if (raw === undefined && !optional) throw new PublicError(422, "missing request body");
  const body = raw === undefined ? {} : raw;
  const error = validateSchema(schema, body);
  if (error) throw new PublicError(422, error);
  return body;
}
