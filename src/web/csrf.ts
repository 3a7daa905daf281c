/**
 * Cross-site request forgery protection for what the web page changes. A state change (any method but GET,
 * HEAD, OPTIONS) made with a page session needs both: the browser's own word that it comes from this origin
 * (`Sec-Fetch-Site: same-origin`, or an `Origin` naming this host), and the session's CSRF token in the
 * `X-CSRF-Token` header (an HMAC of the session, which a page of another site can neither read nor compute).
 * Requests with an `Authorization` header are exempt: a browser never adds one to a forged request, and the
 * Python client sends one. The sign-in itself, which has no session yet, needs the origin check alone.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { Context, Middleware } from "koa";
import type { Authenticator } from "../auth/authenticator.js";

export const CSRF_HEADER = "x-csrf-token";
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** Makes and checks the tokens of page sessions with a key of this gateway run. */
export class CsrfTokens {
  private readonly key = randomBytes(32);

  /** The token of a session (the cookie value). */
  tokenFor(session: string): string {
    return createHmac("sha256", this.key).update(session).digest("hex");
  }

  /** Whether `token` is the session's token (compared in constant time). */
  matches(session: string, token: string | undefined): boolean {
    if (!token) return false;
    const want = Buffer.from(this.tokenFor(session));
    const got = Buffer.from(token);
    return got.length === want.length && timingSafeEqual(got, want);
  }
}

/** Why a request does not come from this gateway's own pages, or null when it does. */
export function crossSiteReason(ctx: Context, publicOrigin: string | null): string | null {
  const site = ctx.get("sec-fetch-site");
  if (site && site !== "same-origin") return `Sec-Fetch-Site is ${site}`;
  const origin = ctx.get("origin");
  if (origin) {
    const allowed = [`${ctx.protocol}://${ctx.host}`, publicOrigin].filter(Boolean);
    if (!allowed.includes(origin)) return `Origin ${origin} is not this gateway`;
  } else if (!site) {
    return "neither Origin nor Sec-Fetch-Site says where it comes from";
  }
  return null;
}

/**
 * Refuses (403) a state change made with a page session that fails either check, and a sign-in from another
 * site; everything else passes untouched.
 */
export function csrfGuard(auth: Authenticator, tokens: CsrfTokens, signInPath: string, publicOrigin: string | null): Middleware {
  return async (ctx, next) => {
    if (SAFE_METHODS.has(ctx.method) || ctx.get("authorization")) return next();
    const session = ctx.cookies.get(auth.cookieName);
    const isSignIn = ctx.path === signInPath;
    if (!isSignIn && !auth.isPageSession(session)) return next();
    const reason = crossSiteReason(ctx, publicOrigin) ?? (isSignIn || tokens.matches(session!, ctx.get(CSRF_HEADER) || undefined) ? null : "the X-CSRF-Token header is missing or wrong");
    if (reason) {
      ctx.status = 403;
      ctx.body = { error: `cross-site request refused: ${reason}` };
      return;
    }
    return next();
  };
}
