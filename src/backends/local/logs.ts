/**
 * Logs of local clusters: each process appends its stdout and stderr to a file in the cluster's directory
 * (logs/scheduler.log, logs/worker-<name>.log). Lines get the time dask wrote at their start (the local time
 * of this machine); a line without one (a traceback's) gets the time of the line before it. Reads are pulled:
 * a follower that does not read holds one chunk, never the file.
 */
import { cpus, hostname, totalmem } from "node:os";
import { open, readdir, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { LogComponent, LogQuery, NodeInfo } from "../backend.js";
import { LineSplitter, formatLine } from "../../logs/lines.js";

const CHUNK_BYTES = 64 * 1024;
/** A tail reads back at most this much of a file. */
const MAX_TAIL_BYTES = 8 * 1024 * 1024;
/** How often a follower looks for new bytes. */
const FOLLOW_POLL_MS = 300;

/** The log file of a component in a cluster's directory. */
export function logFile(workdir: string, component: Pick<LogComponent, "kind" | "name">): string {
  return join(workdir, "logs", component.kind === "scheduler" ? "scheduler.log" : `worker-${component.name}.log`);
}

/** Components with a log file in the cluster's directory: "scheduler" and worker names. */
export async function localLogComponents(workdir: string): Promise<string[]> {
  const files = await readdir(join(workdir, "logs")).catch(() => [] as string[]);
  return files.flatMap((f) => (f === "scheduler.log" ? ["scheduler"] : /^worker-(.+)\.log$/.exec(f)?.slice(1, 2) ?? []));
}

/** The timestamped lines of a log file, or null when there is none. */
export async function localLogStream(file: string, query: LogQuery, pollMs = FOLLOW_POLL_MS): Promise<Readable | null> {
  const handle = await open(file, "r").catch(() => null);
  if (!handle) return null;
  const abort = new AbortController();
  const stream = Readable.from(readLines(handle, query, abort.signal, pollMs), { objectMode: false, highWaterMark: CHUNK_BYTES });
  stream.once("close", () => abort.abort());
  return stream;
}

async function* readLines(handle: FileHandle, query: LogQuery, signal: AbortSignal, pollMs: number): AsyncGenerator<string> {
  try {
    const info = await handle.stat();
    let position = query.tail === null ? 0 : await tailOffset(handle, info.size, query.tail);
    const stamper = new DaskStamper(info.birthtimeMs || info.ctimeMs);
    const splitter = new LineSplitter();
    const buffer = Buffer.alloc(CHUNK_BYTES);
    while (!signal.aborted) {
      const { bytesRead } = await handle.read(buffer, 0, CHUNK_BYTES, position);
      if (bytesRead > 0) {
        position += bytesRead;
        const text = stamper.format(splitter.push(buffer.subarray(0, bytesRead)), query.since);
        if (text) yield text;
        continue;
      }
      if (!query.follow) break;
      const { size } = await handle.stat();
      if (size < position) position = 0; // truncated: read it again from the start
      if (size === position) await sleep(pollMs, signal);
    }
    const rest = stamper.format(splitter.flush(), query.since);
    if (rest && !signal.aborted) yield rest;
  } finally {
    await handle.close();
  }
}

/** Where the last `lines` lines of a file start (a final newline ends the last line, it does not start one). */
export async function tailOffset(handle: FileHandle, size: number, lines: number): Promise<number> {
  if (lines === 0) return size;
  let position = size;
  let seen = 0;
  const buffer = Buffer.alloc(CHUNK_BYTES);
  while (position > 0 && size - position < MAX_TAIL_BYTES) {
    const length = Math.min(CHUNK_BYTES, position);
    position -= length;
    await handle.read(buffer, 0, length, position);
    for (let i = length - 1; i >= 0; i--) {
      if (buffer[i] !== 10 || position + i === size - 1) continue;
      if (++seen === lines) return position + i + 1;
    }
  }
  return position;
}

/** dask's log format starts `2026-12-01 13:32:13,123 - `; the time is local. */
const DASK_TIME = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)[,.](\d{3})\b/;

/** Gives each line a time: its own when dask wrote one, else the one before (the file's creation at first). */
export class DaskStamper {
  constructor(private last: number) {}

  /** The lines at or after `since`, formatted, as one string. */
  format(lines: string[], since: number | null): string {
    let out = "";
    for (const line of lines) {
      const m = DASK_TIME.exec(line);
      if (m) {
        const parsed = new Date(`${m[1]}T${m[2]}.${m[3]}`).getTime();
        if (!Number.isNaN(parsed)) this.last = parsed;
      }
      if (since === null || this.last >= since) out += formatLine(this.last, line);
    }
    return out;
  }
}

/** This machine, the one node of the local backend. */
export function localNodes(): NodeInfo[] {
  return [{ name: hostname(), role: "local", state: "ready", availability: "active", cores: cpus().length, memoryBytes: totalmem() }];
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
