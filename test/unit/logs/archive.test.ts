import { existsSync, mkdtempSync, statSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import type { Backend, SchedulerLaunch } from "../../../src/backends/backend.js";
import { LogArchive, lastBytes } from "../../../src/logs/archive.js";
import { createLogger } from "../../../src/logging.js";

const silent = createLogger("silent", "json");
const line = (i: number) => `2026-12-01T10:00:${String(i).padStart(2, "0")}.000Z line ${i}\n`;
const launch = (user: string) => ({ name: "c".repeat(32), user } as SchedulerLaunch);

function archive(text: string, keepBytes: number) {
  const dir = mkdtempSync(join(tmpdir(), "dgw-archive-"));
  const asked: unknown[] = [];
  const backend = {
    logs: async (_l: SchedulerLaunch, _s: unknown, component: unknown, query: unknown) => {
      asked.push({ component, query });
      return Readable.from([text]);
    },
  } as unknown as Backend;
  return { dir, asked, archive: new LogArchive({ dir, backend, keepBytes, retentionSeconds: 60, log: silent }) };
}

describe("kept scheduler logs", () => {
  it("keeps the last bytes from a whole line on, and never more", async () => {
    const text = Array.from({ length: 50 }, (_, i) => line(i)).join("");
    const kept = await lastBytes(Readable.from(text.match(/[\s\S]{1,70}/g)!), 200, 1000);
    expect(kept.length).toBeLessThanOrEqual(200);
    expect(kept.startsWith("2026-12-01T10:00:")).toBe(true);
    expect(text.endsWith(kept)).toBe(true);
  });

  it("copies a user cluster's scheduler log (mode 0600), serves it with tail and since, and sweeps it after the retention", async () => {
    const { dir, asked, archive: a } = archive(Array.from({ length: 10 }, (_, i) => line(i)).join(""), 1 << 20);
    await a.keep(launch("alice"), { pid: 1 });
    expect(asked).toEqual([{ component: { kind: "scheduler", name: "scheduler", state: { pid: 1 } }, query: { tail: 32768, since: null, follow: false } }]);
    const file = join(dir, `${"c".repeat(32)}.scheduler.log`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(await a.has("c".repeat(32))).toBe(true);
    const read = async (query: { tail: number | null; since: number | null }) => {
      let out = "";
      for await (const chunk of (await a.open("c".repeat(32), { ...query, follow: true }))!) out += String(chunk);
      return out;
    };
    expect(await read({ tail: 2, since: null })).toBe(line(8) + line(9));
    expect(await read({ tail: null, since: Date.parse("2026-12-01T10:00:07Z") })).toBe(line(7) + line(8) + line(9));
    expect(await read({ tail: 0, since: null })).toBe("");
    expect(await a.open("d".repeat(32), { tail: null, since: null, follow: false })).toBeNull();
    utimesSync(file, new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));
    await a.sweep();
    expect(existsSync(file)).toBe(false);
  });

  it("keeps nothing of the pool's warm schedulers, and a failing backend does not fail the stop", async () => {
    const { dir, asked, archive: a } = archive("x\n", 100);
    await a.keep(launch(""), {});
    expect(asked).toEqual([]);
    const failing = new LogArchive({
      dir, keepBytes: 100, retentionSeconds: 60, log: silent,
      backend: { logs: async () => { throw new Error("engine down"); } } as unknown as Backend,
    });
    await expect(failing.keep(launch("alice"), {})).resolves.toBeUndefined();
  });
});
