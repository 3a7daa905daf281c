/**
 * Turns request headers into a user: a session cookie when one is valid, else Basic credentials.
 * Mirrors the reference: no credentials means a 401 challenge, success issues one cookie per user.
 * Every password check goes through the failure throttle (throttle.ts), whichever edge it comes from.
 */
import { randomBytes } from "node:crypto";
import { FailureThrottle } from "./throttle.js";
import type { User, UserStore } from "./users.js";

export type BasicCredentials = { name: string; password: string };

/** Parses `Basic <base64(name:password)>`; null for anything malformed. */
export function parseBasic(header: string | undefined): BasicCredentials | null {
  if (!header) return null;
  const m = /^Basic +([A-Za-z0-9+/=_-]+) *$/i.exec(header);
  if (!m) return null;
  const decoded = Buffer.from(m[1]!, "base64").toString("latin1");
  const colon = decoded.indexOf(":");
  if (colon < 0) return null;
  return { name: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Parses `token <value>` (the cluster token scheme); null otherwise. */
export function parseToken(header: string | undefined): string | null {
  const m = header ? /^token +(\S+) *$/i.exec(header) : null;
  return m ? m[1]! : null;
}

interface Session {
  user: User;
  expires: number;
  /** Page sessions (a sign-in on the web page): each use renews them for this many seconds. */
  idleSeconds?: number;
}

/** Past this many sessions, opening a page session first drops the expired ones. */
const SWEEP_ABOVE = 10_000;

export class Authenticator {
  /** Random per start, as in the reference, so cookies of an earlier gateway are simply ignored. */
  readonly cookieName = "dask-gateway-" + randomBytes(16).toString("hex");
  private readonly sessions = new Map<string, Session>();
  private readonly byUser = new Map<string, string>();

  constructor(
    private readonly store: UserStore,
    private readonly maxAgeSeconds: number,
    private readonly now: () => number = Date.now,
    private readonly throttle: FailureThrottle = FailureThrottle.off(),
  ) {}

  /** The user of a valid session cookie, or undefined. */
  fromCookie(value: string | undefined): User | undefined {
    if (!value) return undefined;
    const session = this.sessions.get(value);
    if (!session) return undefined;
    if (session.expires <= this.now()) {
      this.forget(value, session.user.name);
      return undefined;
    }
    if (session.idleSeconds) session.expires = this.now() + session.idleSeconds * 1000;
    return session.user;
  }

  /**
   * Checks Basic credentials sent from `address` (the client's, see proxy/client-address.ts); null for missing,
   * malformed or wrong ones. Throws Throttled when that address failed too often for that user name.
   */
  async fromHeader(header: string | undefined, address: string): Promise<User | null> {
    const creds = parseBasic(header);
    if (!creds) return null;
    return this.check(creds.name, creds.password, address);
  }

  /** Checks a user name and password from `address` (also the page's sign-in form); null when wrong; may throw Throttled. */
  async check(name: string, password: string, address: string): Promise<User | null> {
    return this.throttle.guard(name, address, () => this.store.check(name, password));
  }

  /** The session cookie for a user (one per user name, as in the reference) and its Max-Age. */
  issueCookie(user: User): { value: string; maxAge: number } {
    const existing = this.byUser.get(user.name);
    if (existing && this.fromCookie(existing)) return { value: existing, maxAge: 2 * this.maxAgeSeconds };
    const value = randomBytes(16).toString("hex");
    this.sessions.set(value, { user, expires: this.now() + this.maxAgeSeconds * 1000 });
    this.byUser.set(user.name, value);
    return { value, maxAge: 2 * this.maxAgeSeconds };
  }

  /**
   * A session of its own for a sign-in on the web page (never the per-user API cookie, so signing out ends only
   * it): valid until `idleSeconds` pass without use. Answers the cookie value.
   */
  openPageSession(user: User, idleSeconds: number): string {
    if (this.sessions.size > SWEEP_ABOVE) {
      for (const [value, session] of this.sessions) if (session.expires <= this.now()) this.forget(value, session.user.name);
    }
    const value = randomBytes(32).toString("hex");
    this.sessions.set(value, { user, expires: this.now() + idleSeconds * 1000, idleSeconds });
    return value;
  }

  /** Whether a cookie value is a live page session: state changes made with it need the page's CSRF proof. */
  isPageSession(value: string | undefined): boolean {
    return value !== undefined && this.sessions.get(value)?.idleSeconds !== undefined && this.fromCookie(value) !== undefined;
  }

  /** Ends a page session (sign-out); API sessions are left alone. */
  closePageSession(value: string | undefined): void {
    if (value !== undefined && this.sessions.get(value)?.idleSeconds !== undefined) this.sessions.delete(value);
  }

  private forget(value: string, name: string): void {
    this.sessions.delete(value);
    if (this.byUser.get(name) === value) this.byUser.delete(name);
  }
}
