/**
 * The web page's server side: its files at `/` and `/ui/...`, the sign-in that opens a page session (a cookie
 * that is HttpOnly, SameSite=Strict, and Secure under HTTPS), the session's identity and CSRF token, sign-out,
 * and the live event stream. Everything else the page does goes through the API with the session cookie.
 */
import type Router from "@koa/router";
import type { Context, Middleware } from "koa";
import type { Authenticator } from "../auth/authenticator.js";
import { authenticateUser, Unauthorized } from "../api/auth-middleware.js";
import { PublicError } from "../errors.js";
import { CONTENT_SECURITY_POLICY, INDEX_HTML, loadAssets, type Asset } from "./assets.js";
import type { CsrfTokens } from "./csrf.js";
import type { LiveHub } from "./live.js";

/** The Retry-After of an event stream refused at its limits: streams end as pages close, so soon. */
const RETRY_SECONDS = 5;

export const SIGN_IN_PATH = "/ui/session";
/** The page marks its own requests, so that a 401 carries no Basic challenge (which would pop up a password dialog). */
export const PAGE_HEADER = "x-dgw-page";

export interface WebDeps {
  auth: Authenticator;
  tokens: CsrfTokens;
  live: LiveHub;
  /** Seconds a page session lives without use. */
  sessionMaxAge: number;
  /** Cookies get `Secure` when the public URL is HTTPS, even if TLS ends at a proxy in front. */
  secureCookies: boolean;
}

/** Serves the page's files (GET and HEAD only) and answers the page's own 401s without a Basic challenge. */
export function webMiddleware(): Middleware {
  const assets = loadAssets();
  return async (ctx, next) => {
    if (ctx.method === "GET" || ctx.method === "HEAD") {
      if (ctx.path === "/") return servePage(ctx, { body: Buffer.from(INDEX_HTML), type: "text/html; charset=utf-8", etag: "" });
      const asset = ctx.path.startsWith("/ui/") ? assets.get(ctx.path.slice(4)) : undefined;
      if (asset) return servePage(ctx, asset);
    }
    try {
      await next();
    } catch (err) {
      // EventSource cannot add a header: the page's own paths never challenge either.
      if (!(err instanceof Unauthorized) || !(ctx.get(PAGE_HEADER) || ctx.path.startsWith("/ui/"))) throw err;
      ctx.status = 401;
      ctx.body = { error: err.message };
    }
  };
}

function servePage(ctx: Context, asset: Asset): void {
  ctx.set("Content-Security-Policy", CONTENT_SECURITY_POLICY);
  ctx.set("X-Content-Type-Options", "nosniff");
  ctx.set("Referrer-Policy", "same-origin");
  ctx.set("X-Frame-Options", "DENY");
  ctx.set("Cache-Control", "no-cache"); // revalidated each time: an upgraded gateway serves its new page at once
  ctx.type = asset.type;
  if (asset.etag) {
    ctx.set("ETag", asset.etag);
    if (ctx.get("if-none-match") === asset.etag) {
      ctx.status = 304;
      return;
    }
  }
  ctx.status = 200;
  ctx.body = asset.body;
}

/** Adds sign-in, the session's identity, sign-out and the live stream. */
export function addWebRoutes(deps: WebDeps): (router: Router) => void {
  const { auth, tokens } = deps;
  return (router) => {
    router.get(SIGN_IN_PATH, (ctx) => {
      const cookie = ctx.cookies.get(auth.cookieName);
      const user = auth.isPageSession(cookie) ? auth.fromCookie(cookie) : undefined;
      ctx.set("Cache-Control", "no-store");
      ctx.body = user ? { user: { name: user.name, admin: user.admin }, csrf: tokens.tokenFor(cookie!) } : { user: null, csrf: null };
    });

    router.post(SIGN_IN_PATH, async (ctx) => {
      const body = (ctx.request as { body?: unknown }).body as { name?: unknown; password?: unknown } | undefined;
      const name = body?.name;
      const password = body?.password;
      if (typeof name !== "string" || name === "" || name.length > 256) throw new PublicError(422, "field 'name' must be a user name (1 to 256 characters)");
      if (typeof password !== "string" || password.length > 4096) throw new PublicError(422, "field 'password' must be a string");
      const user = await auth.check(name, password, ctx.ip); // throws Throttled (429) when this address failed too often
      if (!user) {
        ctx.status = 401; // no challenge: the page shows the message under its form
        ctx.body = { error: "wrong user name or password" };
        return;
      }
      const value = auth.openPageSession(user, deps.sessionMaxAge);
      ctx.append("Set-Cookie", cookieHeader(auth.cookieName, value, ctx.secure || deps.secureCookies));
      ctx.set("Cache-Control", "no-store");
      ctx.body = { user: { name: user.name, admin: user.admin }, csrf: tokens.tokenFor(value) };
    });

    router.delete(SIGN_IN_PATH, (ctx) => {
      auth.closePageSession(ctx.cookies.get(auth.cookieName));
      ctx.append("Set-Cookie", cookieHeader(auth.cookieName, "", ctx.secure || deps.secureCookies, 0));
      ctx.status = 204;
    });

    router.get("/ui/events", async (ctx) => {
      const user = await authenticateUser(ctx, auth);
      delete ctx.state.issueCookieFor; // the stream's headers go out now: no API cookie can follow them
      const all = ctx.query.scope === "all";
      if (all && !user.admin) throw new PublicError(403, `User ${user.name} is not an admin`);
      const refusal = deps.live.refusal(user.name);
      if (refusal) throw new PublicError(429, refusal, RETRY_SECONDS);
      ctx.status = 200;
      ctx.respond = false;
      deps.live.subscribe(ctx.res, user.name, all ? null : user.name);
    });
  };
}

/** Written by hand: Koa refuses `Secure` on a plain-HTTP request, but TLS may end at a proxy in front of us. */
function cookieHeader(name: string, value: string, secure: boolean, maxAge?: number): string {
  return `${name}=${value}; Path=/; HttpOnly; SameSite=Strict${secure ? "; Secure" : ""}${maxAge === undefined ? "" : `; Max-Age=${maxAge}`}`;
}
