/**
 * Scheduler logs kept after their cluster's objects are gone: when a cluster stops or fails, the last
 * `logs.kept_bytes` of its scheduler's log are copied to `<state_dir>/logs/<cluster>.scheduler.log` (mode
 * 0600) before the backend removes the process directory or the service. The copy stays as long as the
 * stopped cluster's record (clusters.stopped_retention), then a sweep removes it.
 */
import { mkdirSync } from "node:fs";
import { readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { Backend, BackendState, LogQuery, SchedulerLaunch } from "../backends/backend.js";
import type { Logger } from "../logging.js";

/** Keeping a log never holds a stop up longer than this. */
const KEEP_TIMEOUT_MS = 10_000;
const SWEEP_PERIOD_MS = 10 * 60_000;
const SUFFIX = ".scheduler.log";

export interface LogArchiveOptions {
  dir: string;
  backend: Backend;
  keepBytes: number;
  retentionSeconds: number;
  log: Logger;
}

export class LogArchive {
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: LogArchiveOptions) {
    mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  }

  /** Removes expired copies now and every ten minutes. */
  start(): void {
    void this.sweep();
    this.timer = setInterval(() => void this.sweep(), SWEEP_PERIOD_MS);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** Copies the end of a cluster's scheduler log; failures are logged, never thrown (the stop goes on). */
  async keep(launch: SchedulerLaunch, state: BackendState): Promise<void> {
    if (!this.opts.backend.logs || !launch.user) return; // warm schedulers of the pool belong to no one
    // A tail bounds the reading of a huge log; lines are rarely shorter than 32 bytes.
    const query: LogQuery = { tail: Math.max(100, Math.ceil(this.opts.keepBytes / 32)), since: null, follow: false };
    try {
      const source = await this.opts.backend.logs(launch, state, { kind: "scheduler", name: "scheduler", state }, query);
      if (!source) return;
      const text = await lastBytes(source, this.opts.keepBytes, KEEP_TIMEOUT_MS);
      const file = this.file(launch.name);
      await writeFile(`${file}.tmp`, text, { mode: 0o600 });
      await rename(`${file}.tmp`, file);
    } catch (err) {
      this.opts.log.warn({ cluster: launch.name, err: (err as Error).message }, "could not keep the scheduler's log");
    }
  }

  /** Whether a copy of the cluster's scheduler log exists. */
  async has(cluster: string): Promise<boolean> {
    return stat(this.file(cluster)).then(() => true, () => false);
  }

  /** The kept copy, with `tail` and `since` applied (a kept log never grows, so `follow` ends at once); null if none. */
  async open(cluster: string, query: LogQuery): Promise<Readable | null> {
    const text = await readFile(this.file(cluster), "utf8").catch(() => null);
    if (text === null) return null;
    let lines = text.split("\n").filter(Boolean);
    if (query.since !== null) lines = lines.filter((l) => Date.parse(l.slice(0, l.indexOf(" "))) >= query.since!);
    if (query.tail !== null) lines = query.tail === 0 ? [] : lines.slice(-query.tail);
    return Readable.from(lines.length ? [lines.join("\n") + "\n"] : [], { objectMode: false });
  }

  /** Removes copies older than the retention of stopped clusters. */
  async sweep(): Promise<void> {
    const limit = Date.now() - this.opts.retentionSeconds * 1000;
    for (const name of await readdir(this.opts.dir).catch(() => [] as string[])) {
      const path = join(this.opts.dir, name);
      const info = await stat(path).catch(() => null);
      if (info && info.mtimeMs < limit) await rm(path, { force: true });
    }
  }

  private file(cluster: string): string {
    return join(this.opts.dir, `${cluster}${SUFFIX}`);
  }
}

/** The last `limit` bytes of a stream, starting at a whole line; the stream is destroyed after `timeoutMs`. */
export async function lastBytes(source: Readable, limit: number, timeoutMs: number): Promise<string> {
  const timer = setTimeout(() => source.destroy(new Error(`reading the log took longer than ${timeoutMs} ms`)), timeoutMs);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of source) {
      const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
      chunks.push(buffer);
      size += buffer.length;
      while (chunks.length > 1 && size - chunks[0]!.length >= limit) size -= chunks.shift()!.length;
    }
  } finally {
    clearTimeout(timer);
    source.destroy();
  }
  let all = Buffer.concat(chunks);
  if (all.length > limit) {
    all = all.subarray(all.length - limit);
    const nl = all.indexOf(10);
    all = nl === -1 ? Buffer.alloc(0) : all.subarray(nl + 1);
  }
  return all.toString("utf8");
}
