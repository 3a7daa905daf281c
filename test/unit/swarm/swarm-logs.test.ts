import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type Docker from "dockerode";
import { DockerLogDecoder, countOn, serviceLogOptions, serviceLogStream } from "../../../src/backends/swarm/logs.js";

const FIXTURES = join(import.meta.dirname, "fixtures");
const framed = readFileSync(join(FIXTURES, "service-logs-framed.bin"));
const tty = readFileSync(join(FIXTURES, "service-logs-tty.bin"));

/** Decodes `data` delivered in chunks cut at `cuts`. */
async function decode(data: Buffer, cuts: number[] = []): Promise<string> {
  const chunks: Buffer[] = [];
  let at = 0;
  for (const cut of cuts) {
    chunks.push(data.subarray(at, Math.min(data.length, at + cut)));
    at = Math.min(data.length, at + cut);
  }
  chunks.push(data.subarray(at));
  let out = "";
  for await (const chunk of Readable.from(chunks.filter((c) => c.length)).pipe(new DockerLogDecoder())) out += String(chunk);
  return out;
}

const EXPECTED_FRAMED = [
  "2026-12-01T10:00:01.123Z 2026-12-01 10:00:01,123 - distributed.scheduler - INFO - State start",
  "2026-12-01T10:00:01.200Z Traceback (most recent call last):",
  "2026-12-01T10:00:02.000Z 2026-12-01 10:00:02,000 - distributed.scheduler - INFO -   Scheduler at: tls://10.0.1.5:8786",
  '2026-12-01T10:00:02.500Z   File "x.py", line 1',
  "2026-12-01T10:00:02.600Z ValueError: boom",
].join("\n") + "\n";

describe("Docker's service log stream", () => {
  it("decodes the multiplexed framing of a service without a TTY, stdout and stderr alike", async () => {
    expect(await decode(framed)).toBe(EXPECTED_FRAMED);
  });

  it("gives the same lines however the engine's bytes are chunked (headers and lines cut anywhere)", async () => {
    await fc.assert(fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 30 }), async (cuts) => {
      expect(await decode(framed, cuts)).toBe(EXPECTED_FRAMED);
    }), { numRuns: 200 });
  });

  it("reads a TTY service's raw stream as lines", async () => {
    expect(await decode(tty)).toBe("2026-12-01T10:00:03.000Z tty line one\n2026-12-01T10:00:04.000Z tty line two\n");
  });

  it("refuses a frame too large to be Docker's, instead of buffering it", async () => {
    const header = Buffer.from([1, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff]);
    await expect(decode(Buffer.concat([framed, header, Buffer.alloc(16)]))).rejects.toThrow(/not a Docker log stream/);
  });

  it("keeps a line without the engine's time stamp, timed like the line before", async () => {
    const payload = Buffer.from("2026-12-01T10:00:01Z first\nno stamp here\n");
    const frame = Buffer.concat([Buffer.from([1, 0, 0, 0]), Buffer.alloc(4), payload]);
    frame.writeUInt32BE(payload.length, 4);
    expect(await decode(frame)).toBe("2026-12-01T10:00:01.000Z first\n2026-12-01T10:00:01.000Z no stamp here\n");
  });
});

describe("engine queries and node counts", () => {
  it("asks as `docker service logs --timestamps` does", () => {
    expect(serviceLogOptions({ tail: null, since: null, follow: false })).toEqual({ stdout: true, stderr: true, timestamps: true, follow: false, tail: "all" });
    expect(serviceLogOptions({ tail: 10, since: 1_764_583_200_500, follow: true })).toEqual({
      stdout: true, stderr: true, timestamps: true, follow: true, tail: "10", since: "1764583200.500",
    });
  });

  it("counts this gateway's running schedulers and workers per node", () => {
    const node = {
      ID: "n1", Spec: { Availability: "active", Role: "manager" }, Status: { State: "ready" },
      Description: { Hostname: "node1", Resources: { NanoCPUs: 4e9, MemoryBytes: 8 * 1024 ** 3 } },
    };
    const roles = new Map([["s1", "scheduler"], ["w1", "worker"], ["w2", "worker"]]);
    const tasks = [
      { NodeID: "n1", ServiceID: "s1", Status: { State: "running" } },
      { NodeID: "n1", ServiceID: "w1", Status: { State: "running" } },
      { NodeID: "n1", ServiceID: "w2", Status: { State: "starting" } },
      { NodeID: "n2", ServiceID: "w2", Status: { State: "running" } },
    ];
    expect(countOn(node, tasks, roles)).toEqual({
      name: "node1", role: "manager", state: "ready", availability: "active", cores: 4, memoryBytes: 8 * 1024 ** 3, workers: 1, schedulers: 1,
    });
  });
});

describe("serviceLogStream", () => {
  /** A fake engine whose dial answers with `answer` and records what it was asked. */
  function engine(answer: (opts: Record<string, unknown>) => Readable | Error) {
    const asked: Array<Record<string, unknown>> = [];
    const docker = {
      modem: {
        dial(opts: Record<string, unknown>, cb: (err: unknown, data?: unknown) => void) {
          asked.push(opts);
          const a = answer(opts);
          setImmediate(() => (a instanceof Error ? cb(a) : cb(null, a)));
        },
      },
    } as unknown as Docker;
    return { docker, asked };
  }

  it("asks the engine for a stream (never a buffered answer) and decodes it", async () => {
    const raw = Readable.from([framed]);
    const { docker, asked } = engine(() => raw);
    const stream = (await serviceLogStream(docker, "svc1", { tail: 5, since: null, follow: false }))!;
    let out = "";
    for await (const chunk of stream) out += String(chunk);
    expect(out).toBe(EXPECTED_FRAMED);
    expect(asked[0]).toMatchObject({ path: "/services/svc1/logs?", method: "GET", isStream: true, options: { tail: "5", timestamps: true } });
  });

  it("answers null for a service that is gone, and destroying the decoded stream closes the engine's", async () => {
    const gone = Object.assign(new Error("no such service"), { statusCode: 404 });
    expect(await serviceLogStream(engine(() => gone).docker, "svc1", { tail: null, since: null, follow: true })).toBeNull();
    const raw = new Readable({ read() {} }); // a follow that never ends by itself
    const { docker, asked } = engine(() => raw);
    const stream = (await serviceLogStream(docker, "svc1", { tail: null, since: null, follow: true }))!;
    stream.destroy();
    await new Promise((r) => setImmediate(r));
    expect(raw.destroyed).toBe(true);
    expect((asked[0]!.abortSignal as AbortSignal).aborted).toBe(true);
  });
});
