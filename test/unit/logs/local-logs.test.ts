import { appendFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { DaskStamper, localLogComponents, localLogStream, logFile, tailOffset } from "../../../src/backends/local/logs.js";

const dask = (time: string, text: string) => `2026-12-01 ${time},000 - distributed.scheduler - INFO - ${text}\n`;

function tmpLog(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "dgw-logs-"));
  const file = join(dir, "scheduler.log");
  writeFileSync(file, text);
  return file;
}

/** Reads a stream until `done` says it has enough (or it ends). */
async function read(stream: Readable, done: (text: string) => boolean = () => false): Promise<string> {
  let text = "";
  for await (const chunk of stream) {
    text += String(chunk);
    if (done(text)) break;
  }
  return text;
}

describe("local logs", () => {
  it("times every line by dask's stamp (local time); lines without one take the time of the line before", () => {
    const stamper = new DaskStamper(0);
    const out = stamper.format([dask("10:00:01", "a").trimEnd(), "Traceback (most recent call last):", dask("10:00:02", "b").trimEnd()], null);
    const times = out.trimEnd().split("\n").map((l) => l.slice(0, l.indexOf(" ")));
    expect(times).toEqual([
      new Date("2026-12-01T10:00:01").toISOString(), new Date("2026-12-01T10:00:01").toISOString(), new Date("2026-12-01T10:00:02").toISOString(),
    ]);
    expect(out).toContain(" Traceback (most recent call last):\n");
  });

  it("finds where the last N lines start, with or without a final newline", async () => {
    const file = tmpLog("a\nbb\nccc\n");
    const handle = await open(file, "r");
    try {
      expect(await tailOffset(handle, 9, 1)).toBe(5);
      expect(await tailOffset(handle, 9, 2)).toBe(2);
      expect(await tailOffset(handle, 9, 10)).toBe(0);
      expect(await tailOffset(handle, 9, 0)).toBe(9);
      expect(await tailOffset(handle, 8, 1)).toBe(5); // "a\nbb\nccc" without the final newline
    } finally {
      await handle.close();
    }
  });

  it("applies tail, then since", async () => {
    const file = tmpLog(dask("10:00:01", "one") + dask("10:00:02", "two") + dask("10:00:03", "three"));
    const all = await read((await localLogStream(file, { tail: null, since: null, follow: false }))!);
    expect(all.trimEnd().split("\n")).toHaveLength(3);
    const tail = await read((await localLogStream(file, { tail: 2, since: null, follow: false }))!);
    expect(tail).toMatch(/two\n.*three\n$/);
    const since = new Date("2026-12-01T10:00:03").getTime();
    expect(await read((await localLogStream(file, { tail: 2, since, follow: false }))!)).toMatch(/^\S+ .*three\n$/);
    expect(await localLogStream(join(file, "..", "missing.log"), { tail: null, since: null, follow: false })).toBeNull();
  });

  it("follows appended lines, and destroying the stream ends the reading", async () => {
    const file = tmpLog(dask("10:00:01", "first"));
    const stream = (await localLogStream(file, { tail: 1, since: null, follow: true }, 20))!;
    const reading = read(stream, (t) => t.includes("second"));
    setTimeout(() => appendFileSync(file, dask("10:00:05", "second")), 100);
    const text = await reading; // breaking out of the loop destroys the stream
    expect(text).toMatch(/first\n.*second\n/);
    expect(stream.destroyed).toBe(true);
  });

  it("lists the scheduler and the workers by their log files", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dgw-cluster-"));
    const worker = { kind: "worker" as const, name: "f".repeat(32) };
    await import("node:fs/promises").then((fs) => fs.mkdir(join(dir, "logs")));
    writeFileSync(logFile(dir, { kind: "scheduler", name: "scheduler" }), "");
    writeFileSync(logFile(dir, worker), "");
    expect((await localLogComponents(dir)).sort()).toEqual(["f".repeat(32), "scheduler"]);
    expect(await localLogComponents(join(dir, "nothing"))).toEqual([]);
  });
});
