/**
 * Turns request headers into a user: a session cookie when one is valid, else Basic credentials.
 * Mirrors the reference: no credentials means a 401 challenge, success issues one cookie per user.
 */
import { randomBytes } from "node:crypto";
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
}

export class Authenticator {
  /** Random per start, as in the reference, so cookies of an earlier gateway are simply ignored. */
  readonly cookieName = "dask-gateway-" + randomBytes(16).toString("hex");
  private readonly sessions = new Map<string, Session>();
  private readonly byUser = new Map<string, string>();

  constructor(
    private readonly store: UserStore,
    private readonly maxAgeSeconds: number,
    private readonly now: () => number = Date.now,
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
    return session.user;
  }

  /** Checks Basic credentials; null for missing, malformed or wrong ones. */
  async fromHeader(header: string | undefined): Promise<User | null> {
    const creds = parseBasic(header);
    if (!creds) return null;
    return this.store.check(creds.name, creds.password);
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

  private forget(value: string, name: string): void {
    this.sessions.delete(value);
    if (this.byUser.get(name) === value) this.byUser.delete(name);
  }
}
