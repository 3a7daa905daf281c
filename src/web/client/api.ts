/**
 * The page's calls to the gateway: every URL is relative (the page may sit under a reverse proxy's path prefix),
 * every request is marked as the page's (so a 401 carries no Basic challenge), and every state change carries
 * the session's CSRF token.
 */
import type { LogComponentInfo, NodeInfo, UiCluster } from "../wire.js";

export type { LogComponentInfo, NodeInfo, UiCluster };

/** An error answer of the API, with its status and the gateway's own message. */
export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

let csrfToken: string | null = null;

/** Remembers the session's CSRF token (from sign-in or GET ui/session). */
export function setCsrf(token: string | null): void {
  csrfToken = token;
}

/** Called when a request finds the session gone (the page then shows the sign-in form). */
let onSignedOut: () => void = () => undefined;
export function whenSignedOut(handler: () => void): void {
  onSignedOut = handler;
}

/** Asks whether the session still exists; shows the sign-in form when it does not. */
export async function checkSession(): Promise<void> {
  const answer = await api<{ user: unknown }>("GET", "ui/session").catch(() => ({ user: true }));
  if (answer.user === null) onSignedOut();
}

/** Sends a request; resolves with the parsed JSON (or null for an empty answer), rejects with ApiError. */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { "X-DGW-Page": "1", Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken ?? "";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin", cache: "no-store" });
  } catch {
    throw new ApiError(0, "the gateway cannot be reached; check your connection and try again");
  }
  const text = await res.text();
  const data = text ? parseJson(text) : null;
  if (!res.ok) {
    if (res.status === 401 && !path.startsWith("ui/session")) onSignedOut();
    const message = data && typeof data === "object" && "error" in data ? String((data as { error: unknown }).error) : text || res.statusText;
    throw new ApiError(res.status, message);
  }
  return data as T;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Who is signed in. */
export interface SessionUser {
  name: string;
  admin: boolean;
}

export interface OptionField {
  field: string;
  label: string;
  default: unknown;
  spec: { type: "int" | "float" | "string" | "bool" | "select" | "mapping"; min?: number | null; max?: number | null; options?: string[] };
}

export interface ClusterEvents {
  name: string;
  status: string;
  reason: string | null;
  events: Array<{ time: number; kind: string; message: string }>;
}

export interface PoolInfo {
  enabled: boolean;
  size: number;
  max_age: number;
  option_sets: unknown[];
  keys: Array<{ key: string; ready: number; starting: number }>;
}

export interface UsageReport {
  from: string;
  to: string;
  users: Array<{ user: string; clusterHours: number; coreHours: number }>;
}
