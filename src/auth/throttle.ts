/**
 * Brute-force protection for password checks. Failed checks are counted per client address and user name; once a
 * pair has failed `maxFailures` times within `windowSeconds` of its first failure, its attempts are refused (429
 * with Retry-After) for `windowSeconds`, whatever password they carry, since checking them would let guessing go on.
 * Other user names, and the same name from other addresses, are not affected; a success resets the pair.
 * At most `maxFailures` checks of a pair run at once, more wait for a free slot: a burst of parallel guesses cannot
 * overrun the limit, and parallel sign-ins of a real user are only queued. Memory is bounded: a pair is forgotten once its window and refusal are over, and past `maxKeys` pairs the oldest go.
 */
import { createHash } from "node:crypto";
import { PublicError } from "../errors.js";

/** Thrown instead of checking a password: a 429 with `Retry-After: retryAfter` (whole seconds). */
export class Throttled extends PublicError {
  declare readonly retryAfter: number;

  constructor(retryAfter: number) {
    super(429, `too many failed sign-ins for this user name from your address; try again in ${retryAfter} s`, retryAfter);
  }
}

/** What the throttle reports, for the log and the metrics. */
export interface ThrottleEvents {
  /** A password was checked and found wrong. */
  failed(): void;
  /** A pair has just reached the limit: its attempts are refused for `seconds` (reported once per refusal period). */
  throttled(name: string, address: string, seconds: number): void;
  /** An attempt was refused without its password being checked. */
  refused(): void;
}

export interface ThrottleOptions {
  /** Failures of one pair that start its refusal; 0 turns the throttle off. */
  maxFailures: number;
  windowSeconds: number;
  /** Most pairs remembered at once (default DEFAULT_MAX_KEYS). */
  maxKeys?: number;
  events?: Partial<ThrottleEvents>;
  /** A monotonic clock in milliseconds (a wall-clock jump must not lengthen a refusal). */
  now?: () => number;
}

export const DEFAULT_MAX_KEYS = 10_000;
/** A longer user name is kept as its digest, so that a key stays small whatever the name. */
const MAX_NAME_CHARS = 128;

interface Entry {
  failures: number;
  /** End of the counting window that began with the pair's first failure (ms). */
  windowEnd: number;
  /** Attempts are refused until then (ms); 0 when they are not. */
  refusedUntil: number;
  /** Checks of this pair under way. */
  inFlight: number;
  /** Attempts waiting for a check slot, woken one at a time. */
  waiting: Array<() => void>;
}

/** Counts failed password checks per (address, user name) and refuses a pair that failed too often. */
export class FailureThrottle {
  /** In insertion order, which is about expiry order: the oldest pairs are first in line to go. */
  private readonly entries = new Map<string, Entry>();
  private readonly maxKeys: number;
  private readonly now: () => number;

  constructor(private readonly opts: ThrottleOptions) {
    this.maxKeys = opts.maxKeys ?? DEFAULT_MAX_KEYS;
    this.now = opts.now ?? (() => performance.now());
  }

  /** A throttle that never refuses (auth.max_failures 0). */
  static off(): FailureThrottle {
    return new FailureThrottle({ maxFailures: 0, windowSeconds: 1 });
  }

  /** Pairs remembered now. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Runs `check` (a password check answering null when the password is wrong) for `name` from `address`, and
   * counts its outcome; throws Throttled without running it when the pair is refused.
   */
  async guard<T>(name: string, address: string, check: () => Promise<T | null>): Promise<T | null> {
    if (this.opts.maxFailures <= 0) return check();
    const key = keyOf(name, address);
    const entry = await this.admit(key);
    let result: T | null;
    try {
      result = await check();
    } finally {
      entry.inFlight--;
      entry.waiting.shift()?.();
    }
    if (result === null) this.failed(key, name, address);
    else this.succeeded(key);
    return result;
  }

  /** The pair's entry with a check slot taken; waits while every slot is taken; throws Throttled while refused. */
  private async admit(key: string): Promise<Entry> {
    for (;;) {
      const now = this.now();
      const entry = this.current(key, now) ?? this.insert(key, now);
      if (entry.refusedUntil > now) {
        entry.waiting.shift()?.(); // the next in line learns it too
        this.opts.events?.refused?.();
        throw new Throttled(Math.max(1, Math.ceil((entry.refusedUntil - now) / 1000)));
      }
      if (entry.inFlight < this.opts.maxFailures) {
        entry.inFlight++;
        return entry;
      }
      await new Promise<void>((resolve) => entry.waiting.push(resolve));
    }
  }

  private failed(key: string, name: string, address: string): void {
    this.opts.events?.failed?.();
    const now = this.now();
    const entry = this.current(key, now) ?? this.insert(key, now);
    if (entry.failures === 0) entry.windowEnd = now + this.opts.windowSeconds * 1000;
    entry.failures++;
    if (entry.failures < this.opts.maxFailures || entry.refusedUntil > now) return;
    entry.refusedUntil = now + this.opts.windowSeconds * 1000;
    // To the back of the line: a refused pair is the last the cap drops.
    this.entries.delete(key);
    this.entries.set(key, entry);
    this.opts.events?.throttled?.(name.slice(0, MAX_NAME_CHARS), address, this.opts.windowSeconds);
  }

  private succeeded(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    if (entry.inFlight === 0) this.drop(key, entry);
    else Object.assign(entry, { failures: 0, windowEnd: 0, refusedUntil: 0 });
  }

  /** The pair's entry, reset (or forgotten, when no check of it is under way) once its window and refusal are over. */
  private current(key: string, now: number): Entry | undefined {
    const entry = this.entries.get(key);
    if (!entry || !expired(entry, now)) return entry;
    if (entry.inFlight === 0) {
      this.drop(key, entry);
      return undefined;
    }
    return Object.assign(entry, { failures: 0, windowEnd: 0, refusedUntil: 0 });
  }

  /** A new entry at the back; expired ones at the front go first, then, at the cap, the oldest. */
  private insert(key: string, now: number): Entry {
    for (const [k, e] of this.entries) {
      if (!expired(e, now) || e.inFlight > 0) break;
      this.drop(k, e);
    }
    for (const [k, e] of this.entries) {
      if (this.entries.size < this.maxKeys) break;
      this.drop(k, e);
    }
    const entry: Entry = { failures: 0, windowEnd: 0, refusedUntil: 0, inFlight: 0, waiting: [] };
    this.entries.set(key, entry);
    return entry;
  }

  /** Forgets a pair; attempts waiting for its slots try again (with a new entry). */
  private drop(key: string, entry: Entry): void {
    this.entries.delete(key);
    for (const wake of entry.waiting.splice(0)) wake();
  }
}

function expired(entry: Entry, now: number): boolean {
  return entry.windowEnd <= now && entry.refusedUntil <= now;
}

/** An address never contains a space, so the first one separates it from the name. */
function keyOf(name: string, address: string): string {
  const kept = name.length > MAX_NAME_CHARS ? "sha256:" + createHash("sha256").update(name).digest("base64") : name;
  return `${address} ${kept}`;
}
