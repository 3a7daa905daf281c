/**
 * Relays dashboard HTTP requests and WebSocket upgrades to a scheduler's dashboard, streaming both
 * ways without buffering. Authentication and route lookup are the caller's.
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";

export interface Target {
  host: string;
  port: number;
}

/** Headers that describe one hop, not the message (RFC 9110 §7.6.1; the list Go's ReverseProxy drops). */
const HOP_BY_HOP = new Set([
  "connection", "proxy-connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
  "transfer-encoding", "upgrade",
]);
const CLUSTER_PATH = /^\/clusters\/([A-Za-z0-9._-]+)(\/[^?#]*)?(\?[^#]*)?$/;
const CONNECT_TIMEOUT_MS = 10_000;
/** A dashboard silent this long is taken for hung; long enough for slow pages (profiles, large task streams). */
const IDLE_TIMEOUT_MS = 120_000;
const BAD_GATEWAY = "HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

/**
 * Splits `/clusters/<name>/rest?q` into the name and the upstream path (`/rest?q`); `/clusters/<name>` and
 * `/clusters/<name>/` give `/`. Undefined for anything else, including `/clusters/<name>x` lookalikes whose
 * name has other characters: the name must be whole and match `[A-Za-z0-9._-]+`.
 */
export function stripClusterPrefix(url: string): { name: string; upstreamPath: string } | undefined {
  const m = CLUSTER_PATH.exec(url);
  if (!m) return undefined;
  return { name: m[1]!, upstreamPath: (m[2] || "/") + (m[3] ?? "") };
}

/** Forwards one HTTP request; 502 with an empty body when the dashboard cannot be reached. */
export function proxyHttp(req: IncomingMessage, res: ServerResponse, target: Target, upstreamPath: string): void {
  const upstream = http.request({
    host: target.host, port: target.port, method: req.method, path: upstreamPath,
    headers: forwardHeaders(req, target), timeout: IDLE_TIMEOUT_MS,
  });
  upstream.on("response", (up) => {
    res.writeHead(up.statusCode ?? 502, up.statusMessage, responseHeaders(up));
    // Flush the head now: a streaming dashboard may not send its first body bytes for a while.
    res.flushHeaders();
    up.pipe(res);
    // A dashboard dying mid-body must not look like a complete response: cut the client's connection.
    up.on("error", () => res.destroy());
  });
  upstream.on("timeout", () => upstream.destroy(new Error("dashboard timed out")));
  upstream.on("error", () => {
    if (res.headersSent || res.destroyed) return void res.destroy();
    res.writeHead(502, { "content-length": "0" });
    res.end();
  });
  // The client went away before the response was complete: stop the dashboard's work too.
  res.on("close", () => {
    if (!res.writableFinished) upstream.destroy();
  });
  req.pipe(upstream);
}

/**
 * Forwards a WebSocket (or any) upgrade at the TCP level: the request head is rewritten and sent to the
 * target, then bytes are piped both ways untouched, the target's 101 (or refusal) included.
 */
export function proxyUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, target: Target, upstreamPath: string): void {
  const upstream = net.connect({ host: target.host, port: target.port });
  let answered502 = false;
  const destroyBoth = () => {
    socket.destroy();
    upstream.destroy();
  };
  upstream.setTimeout(CONNECT_TIMEOUT_MS, () => upstream.destroy(new Error("dashboard connect timeout")));
  upstream.once("connect", () => {
    upstream.setTimeout(0);
    upstream.setNoDelay(true);
    upstream.write(upgradeHead(req, target, upstreamPath));
    if (head.length) upstream.write(head);
    upstream.pipe(socket);
    socket.pipe(upstream);
  });
  upstream.on("error", () => {
    // Until the target has answered, the client still waits for an HTTP response: tell it 502.
    if (upstream.bytesRead > 0 || !socket.writable) return destroyBoth();
    answered502 = true;
    endThenDestroy(socket, BAD_GATEWAY);
  });
  socket.on("error", destroyBoth);
  socket.on("close", () => upstream.destroy());
  // pipe() has already ended the client's side; let queued bytes (a close frame) drain before destroying.
  upstream.on("close", () => {
    if (!answered502) endThenDestroy(socket);
  });
}

/** Ends `socket` (after `last`, if given) and destroys it once flushed, or after a grace period. */
function endThenDestroy(socket: Duplex, last?: string): void {
  if (socket.destroyed) return;
  const timer = setTimeout(() => socket.destroy(), CONNECT_TIMEOUT_MS).unref();
  socket.once("close", () => clearTimeout(timer));
  if (socket.writableFinished) return void socket.destroy();
  socket.once("finish", () => socket.destroy());
  if (!socket.writableEnded) socket.end(last);
}

function upgradeHead(req: IncomingMessage, target: Target, upstreamPath: string): string {
  const headers = forwardHeaders(req, target);
  headers.connection = "Upgrade";
  headers.upgrade = req.headers.upgrade ?? "websocket";
  const lines = [`${req.method ?? "GET"} ${upstreamPath} HTTP/1.1`];
  // Node's parser has already refused CR and LF in incoming names and values, so they are safe to copy.
  for (const [k, v] of Object.entries(headers)) for (const value of [v ?? []].flat()) lines.push(`${k}: ${value}`);
  return lines.join("\r\n") + "\r\n\r\n";
}

/** The fixed hop-by-hop names plus any the message's own Connection header lists. */
function hopByHop(connection: string | string[] | undefined): Set<string> {
  if (!connection) return HOP_BY_HOP;
  const names = new Set(HOP_BY_HOP);
  for (const token of [connection].flat().join(",").split(",")) {
    const name = token.trim().toLowerCase();
    if (name) names.add(name);
  }
  return names;
}

/** The dashboard's response headers as raw pairs (duplicates such as Set-Cookie kept), minus hop-by-hop ones. */
function responseHeaders(up: IncomingMessage): string[] {
  const drop = hopByHop(up.headers.connection);
  const out: string[] = [];
  for (let i = 0; i + 1 < up.rawHeaders.length; i += 2) {
    const name = up.rawHeaders[i]!;
    if (!drop.has(name.toLowerCase())) out.push(name, up.rawHeaders[i + 1]!);
  }
  return out;
}

function forwardHeaders(req: IncomingMessage, target: Target): Record<string, string | string[] | undefined> {
  const drop = hopByHop(req.headers.connection);
  const headers: Record<string, string | string[] | undefined> = {};
  for (const [k, v] of Object.entries(req.headers)) if (!drop.has(k)) headers[k] = v;
  // The gateway's own credentials never reach the dashboard: it runs the cluster owner's code, and an
  // admin's session must not be handed to it.
  delete headers.authorization;
  const cookies = (req.headers.cookie ?? "").split(";").map((c) => c.trim()).filter((c) => c && !c.startsWith("dask-gateway-"));
  if (cookies.length) headers.cookie = cookies.join("; ");
  else delete headers.cookie;
  headers.host = `${target.host}:${target.port}`;
  // X-Forwarded-For is appended to (a chain of proxies); Proto and Host describe this hop's client side and
  // are set, not trusted from the client.
  const remote = req.socket.remoteAddress ?? "";
  const prior = [req.headers["x-forwarded-for"] ?? []].flat().join(", ");
  headers["x-forwarded-for"] = prior ? `${prior}, ${remote}` : remote;
  headers["x-forwarded-proto"] = (req.socket as { encrypted?: boolean }).encrypted ? "https" : "http";
  headers["x-forwarded-host"] = req.headers.host ?? "";
  return headers;
}
