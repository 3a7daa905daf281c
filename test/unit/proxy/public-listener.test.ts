/**
 * PublicListener with real sockets: a tls.createServer stands in for the schedulers, an http.Server takes the
 * plain HTTP. Relay with half-close, 20 MB echoed both ways, backpressure from a scheduler that stops reading, a
 * hello that arrives a few bytes at a time, unknown names, dead schedulers, other TLS, silent clients, close(),
 * and the connection count afterwards.
 * Everything runs once per relay path: JavaScript, and splice (the native addon, which `make test-unit` builds).
 */
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Duplex } from "node:stream";
import tls from "node:tls";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsRelay } from "../../../src/proxy/js-relay.js";
import { PublicListener, type Outcome } from "../../../src/proxy/public-listener.js";
import type { RelayPath } from "../../../src/proxy/relay.js";
import { loadSplice, spliceFallbacks } from "../../../src/proxy/splice-relay.js";
import { captureHello } from "./helpers.js";

const HOST = "127.0.0.1";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let dir: string;
let scheduler: tls.Server;
let schedulerPort: number;
let deadPort: number;
let httpServer: http.Server;
let listener: PublicListener;
let port: number;
const outcomes: Outcome[] = [];
const open = new Map<string, number>();
const schedulerSockets = new Set<tls.TLSSocket>();
/** Scheduler-side sockets whose peer has gone: they read the end, failed, or closed. */
const schedulerPeerGone = new WeakSet<tls.TLSSocket>();
let relay: RelayPath;
/** Open descriptors of this process once the listener runs (Linux), to find any a relay leaves behind. */
let fdsAtStart = 0;
const openFds = () => readdirSync("/proc/self/fd").length;

/** The splice path; a missing addon fails its tests rather than skipping them (scripts/native.sh builds it). */
function splicePath(): RelayPath {
  const loaded = loadSplice();
  if (!loaded.path) throw new Error(`native relay unavailable: ${loaded.why}`);
  return loaded.path;
}

/** Polls until `check` holds, or fails with `what` after `ms`. */
async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const settled = () =>
  until(() => listener.relayedConnections === 0 && [...open.values()].every((n) => n === 0), "relayed connections to close");

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, HOST, () => {
      const { port: p } = s.address() as net.AddressInfo;
      s.close(() => resolve(p));
    });
  });
}

describe.each(["js", "splice"] as const)("%s relay path", (mode) => {
  beforeAll(async () => {
    relay = mode === "js" ? jsRelay : splicePath();
    dir = mkdtempSync(join(tmpdir(), "public-listener-"));
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=x", "-days", "1",
      "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { stdio: "ignore" });
    // The fake scheduler answers by the SNI it sees, which the relay passes through untouched.
    scheduler = tls.createServer(
      { key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")), allowHalfOpen: true },
      (s) => {
        schedulerSockets.add(s);
        s.once("close", () => schedulerSockets.delete(s));
        s.on("error", () => undefined);
        for (const event of ["end", "error", "close"]) s.once(event, () => schedulerPeerGone.add(s));
        if (s.servername === "daskgateway-echo") return void s.pipe(s);
        if (s.servername === "daskgateway-stall") return stall(s);
        // "reply": read until the client has ended its side, then answer on the still-open other direction.
        let got = "";
        s.on("data", (d: Buffer) => (got += d.toString()));
        s.on("end", () => setTimeout(() => s.end(`reply to ${got}`), 50));
      },
    );
    await new Promise<void>((resolve) => scheduler.listen(0, HOST, resolve));
    schedulerPort = (scheduler.address() as net.AddressInfo).port;
    deadPort = await freePort();
    httpServer = http.createServer((req, res) => res.end(`http ok ${req.method} ${req.url}`));
    listener = new PublicListener({
      resolveScheduler: (name) =>
        name === "echo" || name === "reply" || name === "stall" ? { host: HOST, port: schedulerPort }
          : name === "down" ? { host: HOST, port: deadPort } : undefined,
      onSchedulerConnection: (name, delta) => open.set(name, (open.get(name) ?? 0) + delta),
      httpServer,
      onOutcome: (o) => outcomes.push(o),
      log: pino({ level: "silent" }),
      helloTimeoutMs: 5000,
      relay,
    });
    port = (await listener.listen(0, HOST)).port;
    if (process.platform === "linux") fdsAtStart = openFds();
  });

  afterAll(async () => {
    await listener?.close();
    for (const s of schedulerSockets) s.destroy(); // none should be left; this only keeps a failing run from hanging
    scheduler?.close();
    httpServer?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function connect(servername: string, extra: tls.ConnectionOptions = {}): tls.TLSSocket {
    return tls.connect({ host: HOST, port, servername, rejectUnauthorized: false, ...extra });
  }

  /** Everything the socket reads until its peer ends, and whether the handshake completed. */
  function drain(socket: tls.TLSSocket): Promise<{ data: Buffer; secure: boolean; error?: string }> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let secure = false;
      let error: string | undefined;
      socket.on("secureConnect", () => (secure = true));
      socket.on("data", (c: Buffer) => chunks.push(c));
      socket.on("error", (e) => (error = e.message));
      socket.on("close", () => resolve({ data: Buffer.concat(chunks), secure, error }));
    });
  }

  describe("PublicListener relay", () => {
    it("honours half-close: the client ends its side and still receives the scheduler's reply", async () => {
      const before = outcomes.length;
      const socket = connect("daskgateway-reply");
      socket.once("secureConnect", () => socket.end("ping"));
      const { data, secure } = await drain(socket);
      expect(secure).toBe(true);
      expect(data.toString()).toBe("reply to ping");
      expect(outcomes.slice(before)).toEqual(["tls-scheduler"]);
      await settled();
    });

    it("echoes 20 MB both ways intact", async () => {
      const payload = randomBytes(20 * 1024 * 1024);
      const socket = connect("daskgateway-echo");
      const result = drain(socket);
      socket.once("secureConnect", async () => {
        for (let off = 0; off < payload.length; off += 1 << 20) {
          if (!socket.write(payload.subarray(off, off + (1 << 20)))) await new Promise((r) => socket.once("drain", r));
        }
        socket.end();
      });
      await until(() => listener.relayedConnections === 1, "the relay to open");
      const { data, secure, error } = await result;
      expect(error).toBeUndefined();
      expect(secure).toBe(true);
      expect(data.length).toBe(payload.length);
      expect(createHash("sha256").update(data).digest("hex")).toBe(createHash("sha256").update(payload).digest("hex"));
      await settled();
    }, 60_000);

    it("holds the client back while the scheduler does not read (backpressure), then delivers every byte", async () => {
      const total = 64 * 1024 * 1024;
      const socket = connect("daskgateway-stall");
      const result = drain(socket);
      await new Promise((r) => socket.once("secureConnect", r));
      let accepted = 0; // bytes the client's TLS socket has handed to the kernel
      const writing = (async () => {
        const chunk = Buffer.alloc(1 << 20, 1);
        for (let off = 0; off < total; off += chunk.length) {
          if (!socket.write(chunk, () => (accepted += chunk.length))) await new Promise((r) => socket.once("drain", r));
        }
        socket.end();
      })();
      await sleep(STALL_MS - 300);
      // Kernel buffers and the relay's pipe hold some megabytes; nothing in the relay buffers without bound.
      expect(accepted).toBeLessThan(total / 2);
      await writing;
      const { data, error } = await result;
      expect(error).toBeUndefined();
      expect(data.toString()).toBe(`got ${total}`);
      await settled();
    }, 60_000);

    it("relays a hello that arrives a few bytes at a time", async () => {
      const raw = net.connect({ host: HOST, port });
      await new Promise((r) => raw.once("connect", r));
      raw.setNoDelay(true);
      const socket = connect("daskgateway-reply", { socket: dribbling(raw, 700) });
      socket.once("secureConnect", () => socket.end("slowly"));
      const { data } = await drain(socket);
      expect(data.toString()).toBe("reply to slowly");
      await settled();
    });

    it("keeps 40 parallel relays apart", async () => {
      const runs = Array.from({ length: 40 }, async (_, i) => {
        const payload = randomBytes(64 * 1024 + i);
        const socket = connect("daskgateway-echo");
        socket.once("secureConnect", () => socket.end(payload));
        const { data } = await drain(socket);
        return data.equals(payload);
      });
      expect(await Promise.all(runs)).toEqual(Array(40).fill(true));
      await settled();
    }, 30_000);

    it("closes a client whose scheduler is down, and counts a relay error", async () => {
      const before = outcomes.length;
      const { secure } = await drain(connect("daskgateway-down"));
      expect(secure).toBe(false);
      expect(outcomes.slice(before)).toEqual(["tls-scheduler", "relay-error"]);
      await settled();
    });
  });

  describe("PublicListener refusals and hand-overs", () => {
    it("closes an unknown cluster name without a handshake", async () => {
      const before = outcomes.length;
      const { secure, data } = await drain(connect("daskgateway-nosuchcluster"));
      expect(secure).toBe(false);
      expect(data.length).toBe(0);
      expect(outcomes.slice(before)).toEqual(["unknown-cluster"]);
      expect(open.has("nosuchcluster")).toBe(false);
    });

    it("closes TLS for another name when there is no HTTPS server", async () => {
      const before = outcomes.length;
      const { secure } = await drain(connect("example.com"));
      expect(secure).toBe(false);
      expect(outcomes.slice(before)).toEqual(["invalid"]);
    });

    it("hands plain HTTP to the http.Server, keep-alive requests included", async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const get = (path: string) =>
        new Promise<string>((resolve, reject) => {
          http.get({ host: HOST, port, path, agent }, (res) => {
            let body = "";
            res.on("data", (d) => (body += d));
            res.on("end", () => resolve(body));
          }).on("error", reject);
        });
      const before = outcomes.length;
      expect(await get("/first")).toBe("http ok GET /first");
      expect(await get("/second?x=1")).toBe("http ok GET /second?x=1");
      agent.destroy();
      expect(outcomes.slice(before)).toEqual(["http"]); // one connection, two requests
    });

    it("closes junk that starts like TLS", async () => {
      const before = outcomes.length;
      const raw = net.connect({ host: HOST, port });
      raw.on("error", () => undefined);
      raw.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x08, 0x02, 0, 0, 4, 1, 2, 3, 4]));
      await new Promise((r) => raw.once("close", r));
      expect(outcomes.slice(before)).toEqual(["invalid"]);
    });

    it("the relayed connection count is back to 0 after everything above", async () => {
      await settled();
      expect(listener.relayedConnections).toBe(0);
      expect([...open.entries()].filter(([, n]) => n !== 0)).toEqual([]);
      expect(spliceFallbacks()).toBe(0); // every splice relay above really ran in the addon
      // Each splice relay held two pipes and an eventfd: none may wait for the garbage collector to be closed.
      if (process.platform === "linux") await until(() => openFds() <= fdsAtStart + 3, `open descriptors back near ${fdsAtStart} (now ${openFds()})`);
    });
  });

  describe("PublicListener timeouts and close()", () => {
    /** A listener of its own with a short hello timeout, and the outcomes it reports. */
    async function timedListener(helloTimeoutMs: number) {
      const seen: Outcome[] = [];
      const timed = new PublicListener({
        resolveScheduler: () => ({ host: HOST, port: schedulerPort }),
        onOutcome: (o) => seen.push(o),
        log: pino({ level: "silent" }),
        helloTimeoutMs,
        relay,
      });
      return { listener: timed, port: (await timed.listen(0, HOST)).port, seen };
    }

    it("closes clients that stay silent or stop mid-hello after helloTimeoutMs", async () => {
      const { listener: quick, port: quickPort, seen } = await timedListener(300);
      try {
        const started = Date.now();
        const closed = [0, 3].map(async (bytes) => {
          const raw = net.connect({ host: HOST, port: quickPort });
          raw.on("error", () => undefined);
          if (bytes) raw.write(Buffer.from([0x16, 0x03, 0x01]));
          await new Promise((r) => raw.once("close", r));
          return Date.now() - started;
        });
        const times = await Promise.all(closed);
        for (const t of times) {
          expect(t).toBeGreaterThanOrEqual(250);
          expect(t).toBeLessThan(3000);
        }
        expect(seen).toEqual(["timeout", "timeout"]);
      } finally {
        await quick.close();
      }
    });

    // Timers run before I/O in a turn of the event loop: a hello that arrived while the loop was blocked must win.
    it("serves a hello that is waiting unread when the hello timeout fires on a starved event loop", async () => {
      const { listener: starved, port: starvedPort, seen } = await timedListener(50);
      const hello = await captureHello({ servername: "daskgateway-echo" });
      try {
        const raw = net.connect({ host: HOST, port: starvedPort });
        raw.on("error", () => undefined);
        await new Promise((r) => raw.once("connect", r));
        await sleep(10); // the listener has accepted and armed its timer
        raw.write(hello);
        const blockedUntil = Date.now() + 200;
        while (Date.now() < blockedUntil); // the loop is starved past the timeout while the hello waits in the kernel
        await until(() => seen.length > 0, "a verdict");
        expect(seen).toEqual(["tls-scheduler"]);
        raw.destroy();
      } finally {
        await starved.close();
      }
    });

    /** A listener with one relayed connection (to the echo scheduler) and one undecided, silent connection. */
    async function busyListener() {
      const closing = new PublicListener({
        resolveScheduler: () => ({ host: HOST, port: schedulerPort }),
        log: pino({ level: "silent" }),
        relay,
      });
      const closingPort = (await closing.listen(0, HOST)).port;
      const relayed = tls.connect({ host: HOST, port: closingPort, servername: "daskgateway-echo", rejectUnauthorized: false });
      const relayedClosed = drain(relayed);
      await new Promise((r) => relayed.once("secureConnect", r));
      const silent = net.connect({ host: HOST, port: closingPort });
      silent.on("error", () => undefined);
      const silentClosed = new Promise((r) => silent.once("close", r));
      await new Promise((r) => silent.once("connect", r));
      await until(() => closing.relayedConnections === 1, "the relay to open");
      return { closing, relayedClosed, silentClosed };
    }

    /** Scheduler-side sockets whose relay has not ended them (the fake scheduler may hold a socket after its end). */
    const schedulerConnections = () => [...schedulerSockets].filter((s) => !schedulerPeerGone.has(s)).length;

    it("close() closes the relayed clients and the undecided connections", async () => {
      const { closing, relayedClosed, silentClosed } = await busyListener();
      await closing.close();
      const { secure } = await relayedClosed;
      expect(secure).toBe(true);
      await silentClosed;
    });

    // A local destroy() emits no "error", so close() must end the scheduler side of each relay itself.
    it("close() also closes the relays' scheduler side and counts them closed", async () => {
      await sleep(1000); // the previous test's relay is still closing on the scheduler's side
      const baseline = schedulerConnections();
      const { closing, relayedClosed } = await busyListener();
      await until(() => closing.relayedConnections === 1, "the relay to open");
      await closing.close();
      await relayedClosed;
      expect(closing.relayedConnections).toBe(0);
      await until(() => schedulerConnections() <= baseline, "the scheduler sides to be ended");
    });
  });
});

const STALL_MS = 1500;

/** The "stall" scheduler: reads nothing for STALL_MS, then counts what arrives and answers the count at the end. */
function stall(s: tls.TLSSocket): void {
  s.pause();
  setTimeout(() => {
    let n = 0;
    s.on("data", (d: Buffer) => (n += d.length));
    s.on("end", () => s.end(`got ${n}`));
    s.resume();
  }, STALL_MS);
}

/** A duplex over `raw` that writes the first `slowBytes` bytes a few at a time, a millisecond apart. */
function dribbling(raw: net.Socket, slowBytes: number): Duplex {
  let sent = 0;
  const duplex = new Duplex({
    write(chunk: Buffer, _encoding, callback) {
      void (async () => {
        let off = 0;
        while (off < chunk.length) {
          const n = sent < slowBytes ? 7 : chunk.length - off;
          raw.write(chunk.subarray(off, off + n));
          off += n;
          sent += n;
          if (sent <= slowBytes) await sleep(1);
        }
        callback();
      })();
    },
    read() {
      raw.resume();
    },
    final(callback) {
      raw.end(callback);
    },
    destroy(err, callback) {
      raw.destroy();
      callback(err);
    },
  });
  raw.on("data", (c: Buffer) => {
    if (!duplex.push(c)) raw.pause();
  });
  raw.on("end", () => duplex.push(null));
  raw.on("error", (e) => duplex.destroy(e));
  return duplex;
}
