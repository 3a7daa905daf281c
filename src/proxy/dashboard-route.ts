/**
 * Dashboards behind the gateway's own authentication: `/clusters/<name>/...` reaches the cluster's
 * dashboard only for its owner or an admin (the reference leaves them open to anyone with the link).
 */
import { STATUS_CODES, type IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { Middleware } from "koa";
import type { Authenticator } from "../auth/authenticator.js";
import { PublicError } from "../errors.js";
import type { User } from "../auth/users.js";
import type { ClientAddress } from "./client-address.js";
import { proxyHttp, proxyUpgrade, stripClusterPrefix } from "./dashboard-proxy.js";

export interface DashboardDeps {
  auth: Authenticator;
  /** The dashboard of a running cluster, or undefined. */
  target: (name: string) => { host: string; port: number } | undefined;
  /** Whether a cluster of that name exists (any status): unknown names get 404 before any 403. */
  exists: (name: string) => boolean;
  canAct: (user: User, name: string) => boolean;
  clientAddress: ClientAddress;
}

const CHALLENGE = 'Basic realm="dask-gateway", charset="UTF-8"';

/** Koa middleware that relays dashboard requests and lets everything else through. */
export function dashboardMiddleware(deps: DashboardDeps): Middleware {
  return async (ctx, next) => {
    const route = stripClusterPrefix(ctx.url);
    if (!route) return next();
    const user = await userOf(deps, ctx.req, ctx.cookies.get(deps.auth.cookieName));
    if (!user) {
      ctx.status = 401;
      ctx.set("WWW-Authenticate", CHALLENGE);
      ctx.body = { error: "Authentication required" };
      return;
    }
    if (!deps.exists(route.name)) return notFound(ctx, route.name);
    if (!deps.canAct(user, route.name)) {
      ctx.status = 403;
      ctx.body = { error: `User ${user.name} lacks permissions to view cluster ${route.name}` };
      return;
    }
    const target = deps.target(route.name);
    if (!target) return notFound(ctx, route.name, " is not running");
    if (!ctx.cookies.get(deps.auth.cookieName) || !deps.auth.fromCookie(ctx.cookies.get(deps.auth.cookieName))) {
      // Browsers resend Basic credentials on every request; a session cookie spares a password check each time.
      const { value, maxAge } = deps.auth.issueCookie(user);
      ctx.cookies.set(deps.auth.cookieName, value, { maxAge: maxAge * 1000, path: "/", httpOnly: true, sameSite: "lax", signed: false });
    }
    ctx.respond = false;
    proxyHttp(ctx.req, ctx.res, target, route.upstreamPath);
  };
}

/** The `upgrade` listener of the HTTP server: WebSockets of dashboards, with the same checks. */
export function dashboardUpgrade(deps: DashboardDeps) {
  return (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on("error", () => socket.destroy());
    const route = stripClusterPrefix(req.url ?? "");
    void (async () => {
      if (!route) return reject(socket, 404, "Not Found");
      const user = await userOf(deps, req, cookieValue(req, deps.auth.cookieName)).catch((err: unknown) => {
        if (err instanceof PublicError) return err;
        throw err;
      });
      if (user instanceof PublicError) return reject(socket, user.status, STATUS_CODES[user.status] ?? "Error", user.retryAfter ? `Retry-After: ${user.retryAfter}\r\n` : "");
      if (!user) return reject(socket, 401, "Unauthorized", `WWW-Authenticate: ${CHALLENGE}\r\n`);
      if (!deps.exists(route.name)) return reject(socket, 404, "Not Found");
      if (!deps.canAct(user, route.name)) return reject(socket, 403, "Forbidden");
      const target = deps.target(route.name);
      if (!target) return reject(socket, 404, "Not Found");
      proxyUpgrade(req, socket, head, target, route.upstreamPath);
    })().catch(() => socket.destroy());
  };
}

/** The user of the cookie, else of Basic credentials from the client's address (as ctx.ip); may throw Throttled. */
async function userOf(deps: DashboardDeps, req: IncomingMessage, cookie: string | undefined): Promise<User | null> {
  return deps.auth.fromCookie(cookie) ?? (await deps.auth.fromHeader(req.headers.authorization, deps.clientAddress(req)));
}

function cookieValue(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function notFound(ctx: { status: number; body: unknown }, name: string, why = " not found"): void {
  ctx.status = 404;
  ctx.body = { error: `Cluster ${name}${why}` };
}

function reject(socket: Duplex, status: number, text: string, extra = ""): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n${extra}\r\n`);
}
