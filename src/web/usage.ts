/**
 * Usage per user from the gateway's own records: every 30 s the meter adds, for each running cluster, the
 * elapsed time (cluster-seconds) and that time multiplied by its cores (the scheduler's plus its connected
 * workers', core-seconds) to its user's bucket of the hour. Buckets are kept in state_dir/usage.json for
 * web.usage_days. Limits: time while the gateway was down is not counted, and a cluster is measured at
 * 30 s resolution (a worker that lived 10 s may count for 0 or 30).
 */
import { readFileSync } from "node:fs";
import { rename, writeFile } from "node:fs/promises";
import type { ClusterManager } from "../clusters/manager.js";
import type { Logger } from "../logging.js";
import { uiCluster } from "./view.js";

const HOUR_MS = 3_600_000;

/** hour (ms since the epoch / 3600000) → user → [cluster-seconds, core-seconds]. */
type Buckets = Record<string, Record<string, [number, number]>>;

export interface UsageRow {
  user: string;
  clusterHours: number;
  coreHours: number;
}

export interface UsageOptions {
  file: string;
  manager: ClusterManager;
  keepDays: number;
  log: Logger;
  periodMs?: number;
  now?: () => number;
}

export class UsageMeter {
  private buckets: Buckets = {};
  private timer: NodeJS.Timeout | undefined;
  private lastSample: number;
  private readonly now: () => number;
  private saving: Promise<void> = Promise.resolve();

  constructor(private readonly opts: UsageOptions) {
    this.now = opts.now ?? Date.now;
    this.lastSample = this.now();
    try {
      const stored = JSON.parse(readFileSync(opts.file, "utf8")) as { buckets?: Buckets };
      this.buckets = stored.buckets ?? {};
    } catch {
      this.buckets = {}; // none yet, or unreadable: counting starts again
    }
  }

  start(): void {
    this.lastSample = this.now();
    this.timer = setInterval(() => this.sample(), this.opts.periodMs ?? 30_000);
    this.timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.sample();
    await this.saving;
  }

  /** Adds the time since the last sample to every running cluster's user (at most two periods: a stalled timer is no usage). */
  sample(): void {
    const now = this.now();
    const seconds = Math.min(now - this.lastSample, 2 * (this.opts.periodMs ?? 30_000)) / 1000;
    this.lastSample = now;
    if (seconds <= 0) return;
    const hour = String(Math.floor(now / HOUR_MS));
    const bucket = (this.buckets[hour] ??= {});
    for (const c of this.opts.manager.list(null, ["RUNNING"]).map(uiCluster)) {
      const row = (bucket[c.user] ??= [0, 0]);
      row[0] += seconds;
      row[1] += seconds * c.cores;
    }
    const oldest = Math.floor((now - this.opts.keepDays * 86_400_000) / HOUR_MS);
    for (const key of Object.keys(this.buckets)) if (Number(key) < oldest) delete this.buckets[key];
    this.save();
  }

  /** Per-user totals of the hours that start in [from, to), most core-hours first. */
  report(from: number, to: number): UsageRow[] {
    const totals = new Map<string, UsageRow>();
    for (const [hour, users] of Object.entries(this.buckets)) {
      const start = Number(hour) * HOUR_MS;
      if (start < Math.floor(from / HOUR_MS) * HOUR_MS || start >= to) continue;
      for (const [user, [clusterSeconds, coreSeconds]] of Object.entries(users)) {
        const row = totals.get(user) ?? { user, clusterHours: 0, coreHours: 0 };
        row.clusterHours += clusterSeconds / 3600;
        row.coreHours += coreSeconds / 3600;
        totals.set(user, row);
      }
    }
    return [...totals.values()]
      .map((r) => ({ user: r.user, clusterHours: round(r.clusterHours), coreHours: round(r.coreHours) }))
      .sort((a, b) => b.coreHours - a.coreHours || a.user.localeCompare(b.user));
  }

  /** Writes the buckets atomically, one write at a time. */
  private save(): void {
    const text = JSON.stringify({ version: 1, buckets: this.buckets });
    this.saving = this.saving.then(async () => {
      try {
        await writeFile(`${this.opts.file}.tmp`, text, { mode: 0o600 });
        await rename(`${this.opts.file}.tmp`, this.opts.file);
      } catch (err) {
        this.opts.log.warn({ err: (err as Error).message }, "could not save usage");
      }
    });
  }
}

function round(hours: number): number {
  return Math.round(hours * 1000) / 1000;
}
