/**
 * The Koa application: error mapping, body parsing, the API router and the session cookie.
 */
import type Router from "@koa/router";
import Koa, { type Context, type Middleware } from "koa";
import type { KoaBodyMiddlewareOptions } from "koa-body";
import type { Authenticator } from "../auth/authenticator.js";
import type { ClientAddress } from "../proxy/client-address.js";
import type { ClusterManager } from "../clusters/manager.js";
import { PublicError } from "../errors.js";
import { loadPackage } from "../lazy.js";
import type { Logger } from "../logging.js";
import type { Metrics } from "../metrics.js";
import { issueCookie, Unauthorized } from "./auth-middleware.js";
import { apiRouter, hasRequestBody } from "./routes.js";

export interface AppDeps {
  manager: ClusterManager;
  auth: Authenticator;
  log: Logger;
  version: string;
  maxBodyBytes: number;
  metrics: Metrics;
  /** Who the client is (the peer, or past trusted reverse proxies): what ctx.ip answers. */
  clientAddress: ClientAddress;
  /** Extra middleware mounted before the API (the dashboard proxy, the web page). */
  before?: Middleware[];
  /** Adds the routes of extensions (logs, operators' views) to the API router. */
  extraRoutes?: Array<(router: Router) => void>;
}

/** Builds the application; it is served by the public listener, never listened on by itself. */
export function createApp(deps: AppDeps): Koa {
  const app = new Koa({ proxy: false });
  app.silent = true;
  app.use(errors(deps.log, deps.metrics));
  app.use(async (ctx, next) => {
    ctx.request.ip = deps.clientAddress(ctx.req);
    await next();
  });
  for (const m of deps.before ?? []) app.use(m);
  app.use(requireJsonBody);
  app.use(lazyKoaBody({ json: true, jsonLimit: deps.maxBodyBytes, jsonStrict: false, text: false, urlencoded: false, multipart: false }));
  app.use(async (ctx, next) => {
    await next();
    issueCookie(ctx, deps.auth);
  });
  app.use(plainTextStatus);
  const router = apiRouter(deps);
  for (const add of deps.extraRoutes ?? []) add(router);
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

/** Unmatched paths and methods: aiohttp's plain-text 404 and 405 (with `Allow`), as the reference answers. */
const plainTextStatus: Middleware = async (ctx, next) => {
  await next();
  if (ctx.body != null || (ctx.status !== 404 && ctx.status !== 405)) return;
  const status = ctx.status;
  ctx.status = status; // explicit, so that setting the body keeps it
  ctx.type = "text/plain";
  ctx.body = status === 404 ? "404: Not Found" : "405: Method Not Allowed";
};

/** Maps every error to `{"error": message}` with its status; unexpected ones become a logged 500. */
function errors(log: Logger, metrics: Metrics): Middleware {
  return async (ctx: Context, next) => {
    const started = process.hrtime.bigint();
    try {
      await next();
    } catch (err) {
      respondError(ctx, err, log);
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const route = (ctx as { _matchedRoute?: string })._matchedRoute ?? (ctx.path.startsWith("/clusters/") ? "/clusters/:name/*" : "unmatched");
    metrics.httpRequests.inc({ method: ctx.method, route, status: ctx.status });
    metrics.httpDuration.observe({ route }, seconds);
    log.debug({ method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(seconds * 1000) }, "request");
  };
}

function respondError(ctx: Context, err: unknown, log: Logger): void {
  if (err instanceof Unauthorized) {
    ctx.status = 401;
    ctx.set("WWW-Authenticate", err.scheme);
    ctx.body = { error: err.message };
  } else if (err instanceof PublicError) {
    ctx.status = err.status;
    if (err.retryAfter !== undefined) ctx.set("Retry-After", String(err.retryAfter));
    ctx.body = { error: err.message };
  } else if (isHttpError(err) && err.status < 500) {
    ctx.status = err.status;
    ctx.body = { error: err.status === 400 ? `request body is not valid JSON: ${err.message}` : err.message };
  } else {
    log.error({ err, method: ctx.method, path: ctx.path }, "unexpected error");
    ctx.status = 500;
    ctx.body = { error: "internal server error" };
  }
}

function isHttpError(err: unknown): err is { status: number; message: string } {
  return typeof err === "object" && err !== null && typeof (err as { status?: unknown }).status === "number";
}

/** koa-body, loaded at the first request with a body: an idle gateway, and GETs, never need it (memory). */
function lazyKoaBody(options: Partial<KoaBodyMiddlewareOptions>): Middleware {
  let parse: Middleware | undefined;
  return (ctx, next) => {
    if (!hasRequestBody(ctx)) return next();
    parse ??= loadPackage<typeof import("koa-body")>("koa-body").koaBody(options) as unknown as Middleware;
    return parse(ctx, next);
  };
}

/** A request with a body must say it is JSON (the client and the preload always do). */
const requireJsonBody: Middleware = async (ctx, next) => {
  if (hasRequestBody(ctx) && !ctx.is("application/json", "+json")) {
    throw new PublicError(415, `request body must be JSON (Content-Type: application/json), got ${ctx.get("content-type") || "no Content-Type"}`);
  }
  await next();
};
