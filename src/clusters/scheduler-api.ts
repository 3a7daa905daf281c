/**
 * Messages from the gateway to a scheduler's preload API (`POST <api_address>/api/comm`), with the
 * reference's retries: three attempts, 0.1 s then 0.2 s apart.
 */

export type SchedulerMessage =
  | { op: "scale"; count: number }
  | { op: "adapt"; minimum: number | null; maximum: number | null; active: boolean };

/** Sends one message; resolves true on a 2xx answer within the attempts, false otherwise. */
export async function sendToScheduler(
  apiAddress: string,
  token: string,
  message: SchedulerMessage,
  attempts = 3,
): Promise<boolean> {
  let delay = 100;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const res = await fetch(`${apiAddress}/api/comm`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `token ${token}` },
        body: JSON.stringify(message),
        signal: AbortSignal.timeout(10_000),
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
