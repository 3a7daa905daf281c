/**
 * Authentication at the edge of the API: who is calling (a user, or a cluster's scheduler with its
 * token), answered with the reference's exact 401 challenges.
 */
import type { Context } from "koa";
import type { Authenticator } from "../auth/authenticator.js";
import { parseToken } from "../auth/authenticator.js";
import { secretsEqual } from "../auth/passwords.js";
import type { User } from "../auth/users.js";
import type { ClusterRecord } from "../clusters/model.js";

/** Thrown to answer 401 with a challenge of the given scheme. */
export class Unauthorized extends Error {
  constructor(readonly scheme: "Basic" | "token", message = "Authentication required") {
    super(message);
  }
}

/** The calling user, from the session cookie or Basic credentials; throws Unauthorized otherwise. */
export async function authenticateUser(ctx: Context, auth: Authenticator): Promise<User> {
  const fromCookie = auth.fromCookie(ctx.cookies.get(auth.cookieName));
  if (fromCookie) return fromCookie;
  // ctx.ip is the client: the socket's peer, or past the operator's trusted_proxies (createApp sets it).
  const user = await auth.fromHeader(ctx.get("authorization") || undefined, ctx.ip);
  if (!user) throw new Unauthorized("Basic");
  // The cookie is set only if the handler succeeds, as the reference does.
  ctx.state.issueCookieFor = user;
  return user;
}

/** Sets the session cookie after a successful authenticated response. */
export function issueCookie(ctx: Context, auth: Authenticator): void {
  const user = ctx.state.issueCookieFor as User | undefined;
  if (!user || ctx.status >= 400) return;
  const { value, maxAge } = auth.issueCookie(user);
  ctx.cookies.set(auth.cookieName, value, { maxAge: maxAge * 1000, path: "/", httpOnly: true, sameSite: "lax", overwrite: true, signed: false });
}

/** True when the request carries this cluster's own token. */
export function hasClusterToken(ctx: Context, cluster: ClusterRecord | undefined): boolean {
  const token = parseToken(ctx.get("authorization") || undefined);
  return Boolean(token && cluster && secretsEqual(token, cluster.token));
}

/** Owners and admins may act on a cluster. */
export function mayAct(user: User, cluster: ClusterRecord): boolean {
  return user.admin || user.name === cluster.user;
}
