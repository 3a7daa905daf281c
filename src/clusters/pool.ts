/**
 * The warm pool: schedulers started ahead of demand, so that new_cluster() is answered with a RUNNING cluster at
 * once. A warm scheduler is a cluster record of the manager's with `pool` set: it has its own name, TLS key pair and
 * token from the start, is stored, adopted after a restart and cleaned up like any cluster, and no user sees it.
 *
 * This module decides how many to keep for each pool key, which ones to replace and which one a claim gets; the
 * manager owns their lifecycle (starting, stopping, and turning a claimed one into the user's cluster).
 */
import { createHash } from "node:crypto";
import type { SchedulerLaunch } from "../backends/backend.js";
import type { GatewayConfig } from "../config/config.js";
import type { Logger } from "../logging.js";
import { Job, type ClusterConfig, type ClusterRecord, type RecycleReason } from "./model.js";

/** Fields of a launch that do not fix how a scheduler starts: they are the scheduler's own, or apply at the claim. */
const CLAIM_TIME_FIELDS: ReadonlySet<string> = new Set(["name", "user", "token", "tlsCert", "tlsKey", "idleTimeout", "warm", "workerResources"]);
/** How often the pool looks at its schedulers when nothing pokes it. */
const TICK_MS = 1_000;
/** A warm scheduler ready this long proves its key healthy again: the failure back-off starts over. */
const HEALTHY_AFTER_MS = 60_000;
/** The failure back-off doubles at most this many times. */
const MAX_BACKOFF_DOUBLINGS = 5;

export type ClaimResult = "hit" | "miss" | "refused";

/** An option set the pool keeps schedulers for, as the catalog normalized it. */
export interface PoolOptionSet {
  options: Record<string, unknown>;
  config: ClusterConfig;
}

/** What the pool needs from the cluster manager. */
export interface PoolHost {
  /** Every warm record the manager holds, in any state. */
  warmRecords(): ClusterRecord[];
  /** The pool key of a cluster configuration (poolKey of the launch it makes). */
  keyOf(config: ClusterConfig): string;
  /** Records a new warm scheduler and queues its start; rejects when it cannot be recorded. */
  startWarm(set: PoolOptionSet, key: string): Promise<void>;
  /** Stops a warm scheduler, recording why. */
  recycle(c: ClusterRecord, reason: RecycleReason, message: string): void;
}

/** Where the pool reports what it does (metrics.ts). */
export interface PoolMetrics {
  claim(result: ClaimResult, seconds: number): void;
  recycled(reason: RecycleReason): void;
}

export interface PoolOptions {
  settings: GatewayConfig["pool"];
  sets: PoolOptionSet[];
  log: Logger;
  metrics?: PoolMetrics;
  now?: () => number;
}

/** Ready and starting warm schedulers of one key. */
export interface PoolCount {
  key: string;
  ready: number;
  starting: number;
}

/**
 * The pool key: a hash of everything that fixes a scheduler when it starts (image, environment, scheduler cores and
 * memory, heartbeat and adaptive periods, the API URL it reports to, and the backend's own fingerprint: command,
 * default image, placement) and the scheduler's mounts. Any launch field not listed as claim-time is part of it, so a field added later makes
 * requests miss rather than get a scheduler started differently.
 */
export function poolKey(launch: SchedulerLaunch, fingerprint: string): string {
  const fixed = Object.fromEntries(Object.entries(launch).filter(([field]) => !CLAIM_TIME_FIELDS.has(field)));
  // Mounts of workers only are given when workers start, after the claim.
  fixed.mounts = launch.mounts.filter((m) => !m.workers_only);
  return createHash("sha256").update(canonicalJson({ launch: fixed, backend: fingerprint })).digest("hex").slice(0, 16);
}

/** JSON with object keys sorted at every level, so equal values always hash alike. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

export class WarmPool {
  private host: PoolHost | undefined;
  /** The configured sets by key (sets with the same key share one pool). */
  private readonly sets = new Map<string, PoolOptionSet>();
  /** Starts asked of the host and not yet recorded, per key. */
  private readonly launching = new Map<string, number>();
  /** Consecutive failures per key, and when the next start may happen. */
  private readonly failures = new Map<string, { count: number; until: number }>();
  /** When each warm scheduler was first seen ready (in this process). */
  private readonly readySince = new Map<string, number>();
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private pokeScheduled = false;
  private closed = false;

  constructor(private readonly opts: PoolOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Whether claims are served at all (pool.size above 0). */
  get enabled(): boolean {
    return this.opts.settings.size > 0 && this.opts.sets.length > 0;
  }

  /** Computes the keys (the API URL is known only now), logs the settings and starts keeping the pool full. */
  start(host: PoolHost): void {
    this.host = host;
    if (this.enabled) for (const set of this.opts.sets) this.sets.set(host.keyOf(set.config), set);
    const { size, maxAge, refillParallel, failureBackoff } = this.opts.settings;
    this.opts.log.info({
      size, maxSchedulers: this.enabled ? this.maxSchedulers() : 0, maxAge, refillParallel, failureBackoff,
      sets: [...this.sets].map(([poolKey, set]) => ({ poolKey, options: set.options })),
    }, this.enabled ? "warm pool on" : "warm pool off (pool.size is 0)");
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
    this.tick();
  }

  /** Stops refilling; the manager decides what happens to the warm schedulers (clusters.stop_on_shutdown). */
  close(): void {
    this.closed = true;
    clearInterval(this.timer);
  }

  /**
   * Takes the oldest ready warm scheduler of `key` and marks it as being claimed, in one synchronous step: no
   * other claim can take it, however many run at once. Undefined when none is ready (a miss).
   */
  take(key: string): ClusterRecord | undefined {
    if (!this.enabled || !this.host || !this.sets.has(key)) return undefined;
    let best: ClusterRecord | undefined;
    for (const c of this.host.warmRecords()) {
      if (c.pool!.key === key && isReady(c) && (!best || c.startTime < best.startTime)) best = c;
    }
    if (!best) return undefined;
    best.pool!.claiming = true;
    this.readySince.delete(best.name);
    this.failures.delete(key); // a scheduler good enough to hand out: the key works
    this.poke();
    return best;
  }

  /** Counts one create by how the pool served it, with the time until the API answered. */
  countClaim(result: ClaimResult, seconds: number): void {
    this.opts.metrics?.claim(result, seconds);
  }

  /** A warm scheduler has stopped: counts why, backs its key off when it failed on its own, and refills. */
  ended(c: ClusterRecord): void {
    const membership = c.pool!;
    this.readySince.delete(c.name);
    const failed = membership.recycled === undefined && c.status === Job.FAILED;
    const reason = membership.recycled ?? (failed ? (c.schedulerAddress ? "died" : "start_failed") : undefined);
    if (reason) this.opts.metrics?.recycled(reason);
    if (failed) this.failed(membership.key, c.reason ?? "unknown");
    this.poke();
  }

  /** Something changed (a scheduler became ready, was taken or ended): look again soon. */
  poke(): void {
    if (this.pokeScheduled || this.closed) return;
    this.pokeScheduled = true;
    setImmediate(() => {
      this.pokeScheduled = false;
      this.tick();
    });
  }

  /** Starts asked of the manager and not yet recorded (tests wait for them). */
  get pendingStarts(): number {
    return [...this.launching.values()].reduce((a, b) => a + b, 0);
  }

  /** Ready and starting schedulers per configured key (for /api/metrics). */
  counts(): PoolCount[] {
    const counts = new Map<string, PoolCount>([...this.sets.keys()].map((key) => [key, { key, ready: 0, starting: this.launching.get(key) ?? 0 }]));
    for (const c of this.host?.warmRecords() ?? []) {
      const count = counts.get(c.pool!.key);
      if (!count) continue;
      if (isReady(c)) count.ready++;
      else if (isStarting(c)) count.starting++;
    }
    return [...counts.values()];
  }

  /** One look at the pool: replaces what is too old or no longer configured, then starts what is missing. */
  tick(): void {
    if (this.closed || !this.host) return;
    const now = this.now();
    const maxAgeMs = this.opts.settings.maxAge * 1000;
    const live: ClusterRecord[] = [];
    for (const c of this.host.warmRecords()) {
      if (c.target !== Job.RUNNING) continue;
      const membership = c.pool!;
      if (membership.claiming) {
        live.push(c); // still a process of the pool's until the claim ends, one way or the other
      } else if (!this.sets.has(membership.key)) {
        this.host.recycle(c, "config_changed", "the pool's configuration changed: it no longer keeps schedulers started this way");
      } else if (maxAgeMs > 0 && isReady(c) && now - c.startTime > maxAgeMs) {
        this.host.recycle(c, "max_age", `unclaimed for pool.max_age (${this.opts.settings.maxAge} s): replaced by a fresh one`);
      } else {
        live.push(c);
        if (isReady(c)) this.noteReady(c, now);
      }
    }
    this.refill(live, now);
  }

  private refill(live: ClusterRecord[], now: number): void {
    const { size, refillParallel } = this.opts.settings;
    let launching = this.pendingStarts;
    let total = live.length + launching;
    let starting = live.filter(isStarting).length + launching;
    const have = new Map<string, number>();
    for (const c of live) if (!c.pool!.claiming) have.set(c.pool!.key, (have.get(c.pool!.key) ?? 0) + 1);
    // Round robin over the keys, one start each per round, so one key's refills never starve another's.
    for (let started = true; started;) {
      started = false;
      for (const [key, set] of this.sets) {
        const count = (have.get(key) ?? 0) + (this.launching.get(key) ?? 0);
        if (count >= size || total >= this.maxSchedulers() || starting >= refillParallel) continue;
        if ((this.failures.get(key)?.until ?? 0) > now) continue;
        this.launch(key, set);
        launching++;
        total++;
        starting++;
        started = true;
      }
    }
  }

  private launch(key: string, set: PoolOptionSet): void {
    this.launching.set(key, (this.launching.get(key) ?? 0) + 1);
    this.host!.startWarm(set, key)
      .catch((err: Error) => this.failed(key, `could not be recorded: ${err.message}`))
      .finally(() => {
        this.launching.set(key, (this.launching.get(key) ?? 1) - 1);
        this.poke();
      });
  }

  /** Backs a key off: a scheduler that cannot start (a broken command or image) never causes a storm of starts. */
  private failed(key: string, reason: string): void {
    const count = (this.failures.get(key)?.count ?? 0) + 1;
    const seconds = this.opts.settings.failureBackoff * 2 ** Math.min(count - 1, MAX_BACKOFF_DOUBLINGS);
    this.failures.set(key, { count, until: this.now() + seconds * 1000 });
    this.opts.log.warn({ poolKey: key, failures: count, backoffSeconds: seconds, reason }, "a warm scheduler failed; the pool waits before starting another");
  }

  private noteReady(c: ClusterRecord, now: number): void {
    const since = this.readySince.get(c.name);
    if (since === undefined) this.readySince.set(c.name, now);
    else if (now - since >= HEALTHY_AFTER_MS) this.failures.delete(c.pool!.key);
  }

  private maxSchedulers(): number {
    return this.opts.settings.maxSchedulers ?? this.opts.settings.size * Math.max(1, this.sets.size);
  }
}

/** Ready to be claimed: running, wanted, and not being claimed. */
function isReady(c: ClusterRecord): boolean {
  return c.status === Job.RUNNING && c.target === Job.RUNNING && !c.pool!.claiming;
}

function isStarting(c: ClusterRecord): boolean {
  return c.status < Job.RUNNING && c.target === Job.RUNNING;
}
