/**
 * The one public port. It peeks at each connection's first bytes and hands it on: TLS with SNI
 * `daskgateway-<name>` is relayed untouched to that cluster's scheduler, other TLS goes to the HTTPS
 * server (if any), plain HTTP to the Koa application. Hostile input is closed, counted and logged once.
 */
import net, { type AddressInfo } from "node:net";
import { Duplex } from "node:stream";
import type { Server as HttpServer } from "node:http";
import type { Server as HttpsServer } from "node:https";
import type { Logger } from "../logging.js";
import { MAX_HELLO_BYTES, classify } from "./clienthello.js";
import { jsRelay } from "./js-relay.js";
import type { Relay, RelayPath } from "./relay.js";

export const SNI_PREFIX = "daskgateway-";
const CONNECT_TIMEOUT_MS = 10_000;

export const OUTCOMES = ["http", "tls-scheduler", "tls-other", "unknown-cluster", "invalid", "timeout", "relay-error"] as const;
export type Outcome = (typeof OUTCOMES)[number];

export interface PublicListenerOptions {
  /** Where a running cluster's scheduler listens; undefined for unknown or stopped clusters. */
  resolveScheduler: (name: string) => { host: string; port: number } | undefined;
  /** Told when a relayed client connection opens (+1) and closes (-1). */
  onSchedulerConnection?: (name: string, delta: 1 | -1) => void;
  /** Receives plain HTTP connections; absent in scheduler-only mode. */
  httpServer?: HttpServer;
  /** Receives TLS connections not meant for a scheduler; absent means they are closed. */
  httpsServer?: HttpsServer;
  /** Told of each connection's outcome (metrics). */
  onOutcome?: (outcome: Outcome) => void;
  log: Logger;
  /** How long a client may take to send enough bytes to be classified. */
  helloTimeoutMs?: number;
  /** Most connections held open at once; the kernel's backlog holds the rest until Node refuses them. */
  maxConnections?: number;
  /** Connections the kernel queues until they are accepted (Node's default, 511, overflows in heartbeat bursts). */
  backlog?: number;
  /** How long connecting to a scheduler may take before the client is closed (default 10 s, as the Go proxy). */
  connectTimeoutMs?: number;
  /** How relayed bytes move once the scheduler is connected (default: the JavaScript path). */
  relay?: RelayPath;
}

export class PublicListener {
  private readonly server: net.Server;
  /** Each relayed client socket and the relay that serves it (before the scheduler answers: both sockets). */
  private readonly relayed = new Map<net.Socket, Relay>();
  private readonly pending = new Set<net.Socket>();
  private readonly counts: Record<Outcome, number> = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;

  constructor(private readonly opts: PublicListenerOptions) {
    this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, (socket) => this.accept(socket));
    this.server.on("error", (err) => opts.log.error({ err: err.message }, "listener error"));
    if (opts.maxConnections) this.server.maxConnections = opts.maxConnections;
  }

  /** Starts listening; resolves with the bound address. */
  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen({ port, host, backlog: this.opts.backlog }, () => {
        this.server.removeListener("error", reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /**
   * How many connections ended in each outcome since the listener was created (a copy). In scheduler-only
   * mode, and without an HTTPS server, connections nobody here serves count as `invalid`.
   */
  counters(): Record<Outcome, number> {
    return { ...this.counts };
  }

  /** Connections currently relayed to schedulers (both ends counted as one). */
  get relayedConnections(): number {
    return this.relayed.size;
  }

  /** Stops accepting and closes every relayed or undecided connection. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const relay of this.relayed.values()) relay.stop();
    for (const s of this.pending) s.destroy();
    await closed;
  }

  private accept(socket: net.Socket): void {
    this.pending.add(socket);
    let buffered: Buffer = Buffer.alloc(0);
    // Timers run before I/O in each turn of the event loop: on a starved loop the first bytes may be waiting
    // unread when the timer fires, so the verdict waits for one I/O phase (setImmediate runs after it).
    const timer = setTimeout(() => setImmediate(() => this.pending.has(socket) && finish("timeout")), this.opts.helloTimeoutMs ?? 10_000);
    const onData = (chunk: Buffer) => {
      buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
      const c = classify(buffered);
      if (c.kind === "need-more") {
        if (buffered.length > MAX_HELLO_BYTES) finish("invalid", "first bytes too large");
        return;
      }
      if (c.kind === "invalid") return finish("invalid", c.reason);
      if (c.kind === "http") return finish("http");
      if (c.sni?.startsWith(SNI_PREFIX)) return finish("tls-scheduler", c.sni.slice(SNI_PREFIX.length));
      return finish("tls-other");
    };
    const onEnd = () => finish("invalid", "closed before sending enough bytes");
    const onError = () => finish("invalid", "socket error before classification");
    const finish = (outcome: Outcome, detail?: string) => {
      clearTimeout(timer);
      socket.removeListener("data", onData);
      socket.removeListener("end", onEnd);
      socket.removeListener("error", onError);
      socket.pause();
      this.pending.delete(socket);
      this.dispatch(socket, buffered, outcome, detail);
    };
    socket.on("data", onData);
    socket.on("end", onEnd);
    socket.on("error", onError);
  }

  private dispatch(socket: net.Socket, head: Buffer, outcome: Outcome, detail?: string): void {
    if (outcome === "http" && this.opts.httpServer) return this.handOver(socket, head, this.opts.httpServer, outcome);
    if (outcome === "tls-other" && this.opts.httpsServer) return this.handOver(socket, head, this.opts.httpsServer, outcome);
    if (outcome === "tls-scheduler") return this.relay(socket, head, detail!);
    this.reject(socket, outcome === "http" || outcome === "tls-other" ? "invalid" : outcome, detail ?? `${outcome} not served on this port`);
  }

  private handOver(socket: net.Socket, head: Buffer, server: HttpServer | HttpsServer, outcome: Outcome): void {
    this.count(outcome);
    socket.allowHalfOpen = false;
    if (outcome === "tls-other") {
      // TLS reads the socket's handle directly and would miss unshifted bytes: give it a stream that replays them.
      // The cost: the HTTPS side sees no remoteAddress (a generic stream has no peer address).
      server.emit("connection", replayed(socket, head));
      return;
    }
    socket.unshift(head);
    server.emit("connection", socket);
    socket.resume();
  }

  private relay(client: net.Socket, head: Buffer, name: string): void {
    const target = this.opts.resolveScheduler(name);
    if (!target) return this.reject(client, "unknown-cluster", `no running cluster named ${JSON.stringify(name.slice(0, 64))}`);
    this.count("tls-scheduler");
    const upstream = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
    // Until the scheduler answers, stopping is closing both; then the relay path takes over.
    let relay: Relay = {
      stop: () => {
        client.destroy();
        upstream.destroy();
      },
    };
    this.relayed.set(client, { stop: () => relay.stop() });
    this.opts.onSchedulerConnection?.(name, 1);
    let open = 2;
    let failed = false;
    const fail = (err: Error) => {
      if (failed) return;
      failed = true;
      this.count("relay-error");
      this.opts.log.info({ cluster: name, err: err.message }, "relay closed on error");
      relay.stop();
    };
    // Each socket emits "close" once, whichever path destroys it: the count of open relays stays exact.
    const closed = () => {
      if (--open > 0) return;
      this.relayed.delete(client);
      this.opts.onSchedulerConnection?.(name, -1);
    };
    upstream.setTimeout(this.opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS, () => fail(new Error("scheduler connect timeout")));
    upstream.once("connect", () => {
      upstream.setTimeout(0);
      // Dask's messages are request/response: no Nagle delay on either hop.
      upstream.setNoDelay(true);
      client.setNoDelay(true);
      relay = (this.opts.relay ?? jsRelay).start(client, upstream, head, fail);
    });
    client.on("error", fail);
    upstream.on("error", fail);
    client.once("close", closed);
    upstream.once("close", closed);
  }

  private reject(socket: net.Socket, outcome: Outcome, reason: string): void {
    this.count(outcome);
    this.opts.log.info({ outcome, remote: socket.remoteAddress, reason }, "connection refused");
    socket.on("error", () => undefined);
    socket.destroy();
  }

  private count(outcome: Outcome): void {
    this.counts[outcome]++;
    this.opts.onOutcome?.(outcome);
  }
}

/** A duplex that yields `head` and then whatever the socket reads, and writes to the socket. */
function replayed(socket: net.Socket, head: Buffer): Duplex {
  const duplex = new Duplex({
    read: () => void socket.resume(),
    write: (chunk: Buffer, _encoding, callback) => void socket.write(chunk, callback),
    final: (callback) => void socket.end(callback),
    destroy: (err, callback) => {
      socket.destroy(err ?? undefined);
      callback(err);
    },
  });
  duplex.push(head);
  socket.on("data", (chunk: Buffer) => {
    if (!duplex.push(chunk)) socket.pause();
  });
  socket.on("end", () => duplex.push(null));
  socket.on("error", (err) => duplex.destroy(err));
  socket.on("close", () => duplex.destroy());
  return duplex;
}
