/**
 * limits.create_rate: how many clusters a user may create per minute. A creation beyond it is refused with 429
 * and the seconds until the oldest of the minute's creations leaves it.
 */
import { PublicError } from "../errors.js";

const MINUTE_MS = 60_000;

export class CreateRate {
  /** Creation times per user in the last minute. */
  private readonly recent = new Map<string, number[]>();

  constructor(private readonly perMinute: number, private readonly now: () => number) {}

  /** Records a creation by `user`, or throws the 429 when the user reached the limit (nothing is recorded then). */
  take(user: string): void {
    const now = this.now();
    const recent = (this.recent.get(user) ?? []).filter((t) => now - t < MINUTE_MS);
    if (recent.length >= this.perMinute) {
      const wait = Math.max(1, Math.ceil((MINUTE_MS - (now - recent[0]!)) / 1000));
      throw new PublicError(429, `user ${user} created ${recent.length} clusters in the last minute, the limit set by limits.create_rate; try again in ${wait} s`, wait);
    }
    recent.push(now);
    this.recent.set(user, recent);
  }
}
