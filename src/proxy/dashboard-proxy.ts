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

const HOP_BY_HOP = new Set([
  "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
]);
const CLUSTER_PATH = /^\/clusters\/([A-Za-z0-9._-]+)(\/[^?#]*)?(\?[^#]*)?$/;

/** Splits `/clusters/<name>/rest?q` into the name and the upstream path (`/rest?q`); undefined otherwise. */
export function stripClusterPrefix(url: string): { name: string; upstreamPath: string } | undefined {
  const m = CLUSTER_PATH.exec(url);
  if (!m) return undefined;
  return { name: m[1]!, upstreamPath: (m[2] || "/") + (m[3] ?? "") };
}

/** Forwards one HTTP request; 502 with an empty body when the dashboard cannot be reached. */
export function proxyHttp(req: IncomingMessage, res: ServerResponse, target: Target, upstreamPath: string): void {
  const upstream = http.request({
    host: target.host, port: target.port, method: req.method, path: upstreamPath,
    headers: forwardHeaders(req, target), timeout: 30_000,
  });
  upstream.on("response", (up) => {
    const headers = { ...up.headers };
    for (const h of HOP_BY_HOP) delete headers[h];
    res.writeHead(up.statusCode ?? 502, up.statusMessage, headers);
    up.pipe(res);
    up.on("error", () => res.destroy());
  });
  upstream.on("timeout", () => upstream.destroy(new Error("dashboard timed out")));
  upstream.on("error", () => {
    if (!res.headersSent) {
      res.writeHead(502, { "content-length": "0" });
      res.end();
    } else {
      res.destroy();
    }
  });
  res.on("close", () => upstream.destroy());
  req.pipe(upstream);
}

/** Forwards a WebSocket upgrade at the TCP level, then pipes frames both ways untouched. */
export function proxyUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, target: Target, upstreamPath: string): void {
  const upstream = net.connect({ host: target.host, port: target.port });
  const destroyBoth = () => {
    socket.destroy();
    upstream.destroy();
  };
  upstream.setTimeout(10_000, () => upstream.destroy(new Error("dashboard connect timeout")));
  upstream.once("connect", () => {
    upstream.setTimeout(0);
    const headers = forwardHeaders(req, target);
    headers.connection = "Upgrade";
    headers.upgrade = req.headers.upgrade ?? "websocket";
    const lines = [`${req.method} ${upstreamPath} HTTP/1.1`];
    for (const [k, v] of Object.entries(headers)) for (const value of [v].flat()) if (value !== undefined) lines.push(`${k}: ${value}`);
    upstream.write(lines.join("\r\n") + "\r\n\r\n");
    if (head.length) upstream.write(head);
    upstream.pipe(socket);
    socket.pipe(upstream);
  });
  upstream.on("error", () => {
    if (socket.writable && upstream.bytesRead === 0) socket.end("HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    else destroyBoth();
  });
  socket.on("error", destroyBoth);
  socket.on("close", () => upstream.destroy());
  upstream.on("close", () => socket.destroy());
}

function forwardHeaders(req: IncomingMessage, target: Target): Record<string, string | string[] | undefined> {
  const headers: Record<string, string | string[] | undefined> = {};
  for (const [k, v] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(k)) headers[k] = v;
  // The gateway's own credentials never reach the dashboard: it runs the cluster owner's code, and an
  // admin's session must not be handed to it.
  delete headers.authorization;
  const cookies = (req.headers.cookie ?? "").split(";").filter((c) => c.trim() && !c.trim().startsWith("dask-gateway-"));
  if (cookies.length) headers.cookie = cookies.join(";");
  else delete headers.cookie;
  headers.host = `${target.host}:${target.port}`;
  const remote = req.socket.remoteAddress ?? "";
  headers["x-forwarded-for"] = req.headers["x-forwarded-for"] ? `${req.headers["x-forwarded-for"]}, ${remote}` : remote;
  headers["x-forwarded-proto"] = (req.socket as { encrypted?: boolean }).encrypted ? "https" : "http";
  headers["x-forwarded-host"] = req.headers.host ?? "";
  return headers;
}
