/**
 * Operators' extensions (admins only, like /api/v1/admin/clusters): the machines clusters run on, the warm
 * pool, and usage per user over a period from the gateway's own records (web/usage.ts).
 */
import type Router from "@koa/router";
import type { Authenticator } from "../auth/authenticator.js";
import type { Backend, NodeInfo } from "../backends/backend.js";
import type { ClusterManager } from "../clusters/manager.js";
import { PublicError } from "../errors.js";
import { Job } from "../clusters/model.js";
import type { PoolCount } from "../clusters/pool.js";
import { parseSince } from "../logs/lines.js";
import type { UsageMeter } from "../web/usage.js";
import { authenticateUser } from "./auth-middleware.js";
import { requireAdmin } from "./routes.js";

export interface AdminRouteDeps {
  manager: ClusterManager;
  auth: Authenticator;
  backend: Backend;
  pool: { enabled: boolean; counts(): PoolCount[] };
  poolSettings: { size: number; maxAge: number; optionSets: unknown[] };
  usage: UsageMeter;
}

const DEFAULT_USAGE_DAYS = 7;

/** Adds GET /api/v1/admin/{nodes,pool,usage}. */
export function addAdminRoutes(deps: AdminRouteDeps): (router: Router) => void {
  const admin = async (ctx: Parameters<typeof authenticateUser>[0]) => requireAdmin(await authenticateUser(ctx, deps.auth));
  return (router) => {
    router.get("/api/v1/admin/nodes", async (ctx) => {
      await admin(ctx);
      const nodes = await (deps.backend.nodes?.() ?? Promise.resolve([])).catch((err: Error) => {
        throw new PublicError(503, `the ${deps.backend.kind} backend cannot list its nodes (${err.message})`);
      });
      ctx.body = { backend: deps.backend.kind, nodes: withLocalCounts(nodes, deps.manager) };
    });

    router.get("/api/v1/admin/pool", async (ctx) => {
      await admin(ctx);
      ctx.body = {
        enabled: deps.pool.enabled,
        size: deps.poolSettings.size,
        max_age: deps.poolSettings.maxAge,
        option_sets: deps.poolSettings.optionSets,
        keys: deps.pool.counts(),
      };
    });

    router.get("/api/v1/admin/usage", async (ctx) => {
      await admin(ctx);
      const now = Date.now();
      const from = timeParam(ctx.query.from, "from", now) ?? now - DEFAULT_USAGE_DAYS * 86_400_000;
      const to = timeParam(ctx.query.to, "to", now) ?? now;
      if (to <= from) throw new PublicError(422, "to must be later than from");
      ctx.body = { from: new Date(from).toISOString(), to: new Date(to).toISOString(), resolution: "hour", users: deps.usage.report(from, to) };
    });
  };
}

/** A backend that cannot count per node (the local one: one machine) gets the records' counts. */
function withLocalCounts(nodes: NodeInfo[], manager: ClusterManager): NodeInfo[] {
  if (nodes.length !== 1 || nodes[0]!.workers !== undefined) return nodes;
  const running = manager.list(null, ["PENDING", "RUNNING", "STOPPING"]);
  const workers = running.reduce((n, c) => n + [...c.workers.values()].filter((w) => w.status < Job.STOPPED).length, 0);
  return [{ ...nodes[0]!, workers, schedulers: running.filter((c) => c.status < Job.STOPPED).length }];
}

function timeParam(raw: unknown, name: string, now: number): number | null {
  if (raw === undefined) return null;
  const text = Array.isArray(raw) ? String(raw[raw.length - 1]) : String(raw);
  const parsed = /^\d{4}-\d\d-\d\d$/.test(text) ? Date.parse(`${text}T00:00:00Z`) : parseSince(text, now);
  if (parsed === null || Number.isNaN(parsed)) throw new PublicError(422, `${name} must be a date (2026-12-01), an RFC 3339 time, Unix seconds or a duration like 7d, got '${text}'`);
  return parsed;
}
