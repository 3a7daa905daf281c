/**
 * Messages from the gateway to a scheduler's preload API (`POST <api_address>/api/comm`), with the
 * reference's retries: three attempts, 0.1 s then 0.2 s apart; and the pool's claim of a warm scheduler.
 */
import { CLAIM_ROUTE } from "../backends/pool-preload.js";
import { VERSIONS_ROUTE } from "../backends/stack-preload.js";

export type SchedulerMessage =
  | { op: "scale"; count: number }
  | { op: "adapt"; minimum: number | null; maximum: number | null; active: boolean };

/** A claim waits this long for the scheduler: a live one on the same network answers in milliseconds. */
const CLAIM_TIMEOUT_MS = 5_000;

/** Sends one message; resolves true on a 2xx answer within the attempts, false otherwise. */
export function sendToScheduler(apiAddress: string, token: string, message: SchedulerMessage, attempts = 3): Promise<boolean> {
  return post(`${apiAddress}/api/comm`, token, message, attempts, 10_000);
}

/**
 * Arms a claimed warm scheduler's idle timeout from now (backends/pool-preload.ts); resolves false when it does not
 * answer, so that the claim takes another one. One attempt: a scheduler that does not answer at once is not handed out.
 */
export function claimScheduler(apiAddress: string, token: string, idleTimeout: number): Promise<boolean> {
  return post(`${apiAddress}${CLAIM_ROUTE}`, token, { idle_timeout: idleTimeout }, 1, CLAIM_TIMEOUT_MS);
}

/**
 * The versions of the scheduler's Python, dask, distributed and dask-gateway (backends/stack-preload.ts), or null
 * when it does not answer with them.
 */
export async function schedulerVersions(apiAddress: string, token: string): Promise<Record<string, string> | null> {
  try {
    const res = await fetch(`${apiAddress}${VERSIONS_ROUTE}`, { headers: { authorization: `token ${token}` }, signal: AbortSignal.timeout(CLAIM_TIMEOUT_MS) });
    const body = (await res.json()) as unknown;
    if (!res.ok || typeof body !== "object" || body === null) return null;
    return Object.fromEntries(Object.entries(body).filter(([k, v]) => /^[\w.-]{1,40}$/.test(k) && typeof v === "string" && v.length <= 64)) as Record<string, string>;
  } catch {
    return null;
  }
}

async function post(url: string, token: string, body: object, attempts: number, timeoutMs: number): Promise<boolean> {
  let delay = 100;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `token ${token}` },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.arrayBuffer();
      if (res.ok) return true;
    } catch {
      // Connection refused or timed out: retried below.
    }
    if (attempt < attempts) {
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
    }
  }
  return false;
}
