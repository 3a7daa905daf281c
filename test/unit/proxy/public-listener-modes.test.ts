/**
 * PublicListener beyond the relay basics: HTTPS hand-over of other TLS names, plain HTTP whose first bytes
 * arrive split, scheduler-only mode, counters(), and a storm of 2,000 hostile connections after which the
 * listener still serves and holds no relayed socket.
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import tls from "node:tls";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OUTCOMES, PublicListener, type Outcome } from "../../../src/proxy/public-listener.js";
import { captureHello, selfSignedCert } from "./helpers.js";

const HOST = "127.0.0.1";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let scheduler: tls.Server;
let schedulerPort: number;
let httpServer: http.Server;
let httpsServer: https.Server;
let listener: PublicListener;
let port: number;
const open = new Map<string, number>();

async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const resolveScheduler = (name: string) => (name === "c1" ? { host: HOST, port: schedulerPort } : undefined);

beforeAll(async () => {
  const { key, cert } = selfSignedCert();
  // The "scheduler" echoes, prefixed with the SNI it saw (proof that the hello reached it untouched). Like
  // dask's Tornado streams it closes on the client's FIN. (A relay whose client has sent FIN stays open while
  // the scheduler keeps its side open: that is half-close, the relay cannot tell it from a slow answer.)
  scheduler = tls.createServer({ key, cert, allowHalfOpen: false }, (s) => {
    s.on("error", () => undefined);
    s.write(`scheduler sees ${s.servername};`);
    s.pipe(s);
  });
  await new Promise<void>((resolve) => scheduler.listen(0, HOST, resolve));
  schedulerPort = (scheduler.address() as net.AddressInfo).port;
  const respond = (req: http.IncomingMessage, res: http.ServerResponse) => {
    let bytes = 0;
    req.on("data", (d: Buffer) => (bytes += d.length));
    req.on("end", () => res.end(`${req.method} ${req.url} ${bytes}`));
  };
  httpServer = http.createServer(respond);
  httpsServer = https.createServer({ key, cert }, respond);
  listener = new PublicListener({
    resolveScheduler,
    onSchedulerConnection: (name, delta) => open.set(name, (open.get(name) ?? 0) + delta),
    httpServer,
    httpsServer,
    log: pino({ level: "silent" }),
    helloTimeoutMs: 2000,
  });
  port = (await listener.listen(0, HOST)).port;
});

afterAll(async () => {
  await listener?.close();
  httpServer?.closeAllConnections();
  httpsServer?.closeAllConnections();
  scheduler?.close();
});

function delta(before: Record<Outcome, number>, after: Record<Outcome, number>): Partial<Record<Outcome, number>> {
  const out: Partial<Record<Outcome, number>> = {};
  for (const o of OUTCOMES) if (after[o] !== before[o]) out[o] = after[o] - before[o];
  return out;
}

/** Opens a relay to `c1` on `p`, sends `text`, and resolves with everything read until the scheduler's echo of it. */
function schedulerRoundTrip(p: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: HOST, port: p, servername: "daskgateway-c1", rejectUnauthorized: false });
    let got = "";
    s.on("secureConnect", () => s.write(text));
    s.on("data", (d: Buffer) => {
      got += d.toString();
      if (got.endsWith(text)) {
        s.end();
        resolve(got);
      }
    });
    s.on("error", reject);
  });
}

function get(p: number, path: string, secure = false): Promise<string> {
  const client = secure ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.get({ host: HOST, port: p, path, agent: false, servername: "gateway.example", rejectUnauthorized: false }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve(body));
    });
    req.on("error", reject);
  });
}

describe("PublicListener on a shared port", () => {
  it("relays SNI daskgateway-c1 to its scheduler both ways and counts it", async () => {
    const before = listener.counters();
    expect(await schedulerRoundTrip(port, "hello")).toBe("scheduler sees daskgateway-c1;hello");
    expect(delta(before, listener.counters())).toEqual({ "tls-scheduler": 1 });
    await until(() => listener.relayedConnections === 0 && open.get("c1") === 0, "the relay to close");
  });

  it("hands TLS for another name to the HTTPS server, bytes of the hello included", async () => {
    const before = listener.counters();
    expect(await get(port, "/api/health?x=1", true)).toBe("GET /api/health?x=1 0");
    expect(delta(before, listener.counters())).toEqual({ "tls-other": 1 });
  });

  it("hands plain HTTP whose first bytes arrive split, and its body, to the HTTP server", async () => {
    const raw = net.connect({ host: HOST, port });
    raw.setNoDelay(true);
    let reply = "";
    raw.on("data", (d: Buffer) => (reply += d.toString()));
    const closed = new Promise((r) => raw.once("close", r));
    await new Promise((r) => raw.once("connect", r));
    raw.write("PO");
    await sleep(50);
    raw.write("ST /x?y=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 300000\r\n\r\n");
    await sleep(50);
    raw.end(randomBytes(300_000));
    await closed;
    expect(reply.startsWith("HTTP/1.1 200")).toBe(true);
    expect(reply.endsWith("POST /x?y=1 300000")).toBe(true);
  });

  it("counters() is a copy with every outcome", () => {
    const c = listener.counters();
    expect(Object.keys(c).sort()).toEqual([...OUTCOMES].sort());
    c.http += 1000;
    expect(listener.counters().http).not.toBe(c.http);
  });
});

describe("PublicListener in scheduler-only mode", () => {
  it("relays daskgateway- names and closes plain HTTP and other TLS", async () => {
    const only = new PublicListener({ resolveScheduler, log: pino({ level: "silent" }), helloTimeoutMs: 2000 });
    const p = (await only.listen(0, HOST)).port;
    try {
      expect(await schedulerRoundTrip(p, "x")).toBe("scheduler sees daskgateway-c1;x");
      await expect(get(p, "/")).rejects.toThrow();
      await expect(get(p, "/", true)).rejects.toThrow();
      expect(delta(Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>, only.counters()))
        .toEqual({ "tls-scheduler": 1, invalid: 2 });
    } finally {
      await only.close();
    }
  });
});

describe("PublicListener under a storm of hostile connections", () => {
  let unknownHello: Buffer;
  let knownHello: Buffer;

  beforeAll(async () => {
    unknownHello = await captureHello({ servername: "daskgateway-nosuch" });
    knownHello = await captureHello({ servername: "daskgateway-c1" });
  });

  /** One hostile connection of kind `i % 8`; resolves when the listener has closed it (or after 5 s). */
  function hostile(i: number): Promise<void> {
    return new Promise((resolve) => {
      const raw = net.connect({ host: HOST, port });
      const done = setTimeout(() => raw.destroy(), 5000);
      raw.on("error", () => undefined);
      raw.on("data", () => undefined);
      raw.once("close", () => {
        clearTimeout(done);
        resolve();
      });
      raw.once("connect", () => {
        const kind = i % 8;
        const junk = randomBytes(1 + (i % 300));
        if (kind === 0) {
          if (junk[0] === 0x16) junk[0] = 0x47;
          raw.end(junk); // not TLS: the HTTP server answers 400
        } else if (kind === 1) {
          raw.end(Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff])); // record too large
        } else if (kind === 2) {
          raw.end(Buffer.concat([Buffer.from([0x16, 0x03, 0x03, 0, junk.length]), junk])); // garbage record
        } else if (kind === 3) {
          raw.end(knownHello.subarray(0, i % knownHello.length)); // truncated, then FIN
        } else if (kind === 4) {
          raw.end(unknownHello); // unknown cluster
        } else if (kind === 5) {
          raw.write(knownHello); // a real relay, reset by the client once the scheduler has answered
          raw.once("data", () => raw.resetAndDestroy());
        } else if (kind === 6) {
          raw.resetAndDestroy(); // nothing at all, then a reset
        } else {
          const mutated = Buffer.from(knownHello);
          for (let k = 0; k < 4; k++) mutated[(i * 7919 + k * 104729) % mutated.length] = junk[k % junk.length]!;
          raw.end(mutated);
        }
      });
    });
  }

  it("survives 2,000 hostile connections, keeps serving and holds no relayed socket afterwards", async () => {
    const before = listener.counters();
    const total = 2000;
    let next = 0;
    const worker = async () => {
      while (next < total) await hostile(next++);
    };
    await Promise.all(Array.from({ length: 100 }, worker));

    await until(() => listener.relayedConnections === 0, "every relay to close");
    await until(() => [...open.values()].every((n) => n === 0), "connection accounting to return to 0");
    const counted = () => OUTCOMES.reduce((sum, o) => sum + listener.counters()[o] - before[o], 0);
    // Every connection gets exactly one outcome, plus a relay-error for some reset relays.
    await until(() => counted() - (listener.counters()["relay-error"] - before["relay-error"]) >= total, "every outcome to be counted");
    const d = delta(before, listener.counters());
    // Exact for the well-formed kinds; some mutated hellos (kind 7) are still valid and add to either.
    expect(d["unknown-cluster"]).toBeGreaterThanOrEqual(total / 8);
    expect(d["tls-scheduler"]).toBeGreaterThanOrEqual(total / 8);
    expect(d.http).toBeGreaterThanOrEqual(total / 8);
    expect(d.invalid).toBeGreaterThanOrEqual((3 * total) / 8);
    expect(d.timeout ?? 0).toBe(0);
    // A mutated name that lost its daskgateway- prefix is other TLS, handed to the HTTPS server.
    const expected = ["http", "invalid", "unknown-cluster", "tls-scheduler", "tls-other", "relay-error"];
    expect(Object.keys(d).filter((o) => !expected.includes(o))).toEqual([]);

    // Still serving every kind of traffic.
    expect(await get(port, "/after")).toBe("GET /after 0");
    expect(await get(port, "/after-tls", true)).toBe("GET /after-tls 0");
    expect(await schedulerRoundTrip(port, "still here")).toBe("scheduler sees daskgateway-c1;still here");
    await until(() => listener.relayedConnections === 0, "the last relay to close");
  }, 60_000);
});
