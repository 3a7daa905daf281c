/**
 * The dashboard relay with real sockets: a front http.Server (standing in for the gateway) routes
 * `/clusters/<name>/...` through proxyHttp and proxyUpgrade to a local "dashboard" http.Server with a
 * `ws` WebSocket server. Prefix stripping, kept queries, header rewriting, streaming in both directions,
 * WebSockets, and 502s for a dead target.
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import net from "node:net";
import fc from "fast-check";
import { WebSocket, WebSocketServer } from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { proxyHttp, proxyUpgrade, stripClusterPrefix } from "../../../src/proxy/dashboard-proxy.js";

const HOST = "127.0.0.1";

let dashboard: http.Server;
let wss: WebSocketServer;
let front: http.Server;
let frontPort: number;
let dashPort: number;
let deadPort: number;
/** Resolved by the test when the client has seen the first streamed piece; the dashboard then sends the rest. */
let releaseStream: () => void = () => undefined;

function listen(server: http.Server | net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, HOST, () => resolve((server.address() as net.AddressInfo).port)));
}

/** The dashboard: echoes what it received, streams on request, dies mid-body on request. */
function dashboardHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const path = new URL(req.url ?? "/", "http://x").pathname;
  if (path === "/stream") {
    res.writeHead(200, { "content-type": "text/plain" });
    res.write("first piece;");
    releaseStream = () => res.end("second piece");
    return;
  }
  if (path === "/die") {
    res.writeHead(200, { "content-length": "1000" });
    res.write("partial");
    setTimeout(() => res.socket?.destroy(), 50);
    return;
  }
  if (path === "/cookies") {
    res.setHeader("set-cookie", ["a=1; Path=/", "b=2; Path=/"]);
    res.setHeader("connection", "x-hop-response");
    res.setHeader("x-hop-response", "secret");
    return void res.end("ok");
  }
  let bytes = 0;
  req.on("data", (d: Buffer) => (bytes += d.length));
  req.on("end", () => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bytes }));
  });
}

beforeAll(async () => {
  dashboard = http.createServer(dashboardHandler);
  wss = new WebSocketServer({ server: dashboard });
  wss.on("connection", (ws, req) => {
    ws.send(`hello ${req.url} host=${req.headers.host}`);
    ws.on("message", (data, isBinary) => ws.send(isBinary ? data : `echo ${String(data)}`, { binary: isBinary }));
  });
  dashPort = await listen(dashboard);
  const dead = net.createServer();
  deadPort = await listen(dead);
  await new Promise((r) => dead.close(r));

  const targets: Record<string, { host: string; port: number }> = {
    c1: { host: HOST, port: dashPort },
    dead: { host: HOST, port: deadPort },
  };
  front = http.createServer((req, res) => {
    const route = stripClusterPrefix(req.url ?? "");
    const target = route && targets[route.name];
    if (!route || !target) return void res.writeHead(404).end();
    proxyHttp(req, res, target, route.upstreamPath);
  });
  front.on("upgrade", (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    const route = stripClusterPrefix(req.url ?? "");
    const target = route && targets[route.name];
    if (!route || !target) return void socket.destroy();
    proxyUpgrade(req, socket, head, target, route.upstreamPath);
  });
  frontPort = await listen(front);
});

afterAll(async () => {
  for (const c of wss?.clients ?? []) c.terminate();
  wss?.close();
  front?.closeAllConnections();
  dashboard?.closeAllConnections();
  await Promise.all([front, dashboard].map((s) => new Promise((r) => s?.close(r))));
});

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  chunks: string[];
}

function request(path: string, opts: http.RequestOptions = {}, body?: Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: HOST, port: frontPort, path, agent: false, ...opts }, (res) => {
      const chunks: string[] = [];
      res.on("data", (d: Buffer) => chunks.push(d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: chunks.join(""), chunks }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("stripClusterPrefix", () => {
  it.each([
    ["/clusters/abc", "abc", "/"],
    ["/clusters/abc/", "abc", "/"],
    ["/clusters/abc/x/y?q=1", "abc", "/x/y?q=1"],
    ["/clusters/abc?q=1&r=2", "abc", "/?q=1&r=2"],
    ["/clusters/abc/?q=1", "abc", "/?q=1"],
    ["/clusters/a.b_c-D9/status", "a.b_c-D9", "/status"],
    ["/clusters/abcx/status", "abcx", "/status"],
    ["/clusters/abc/individual-plots.json", "abc", "/individual-plots.json"],
  ])("%s -> %s %s", (url, name, upstreamPath) => {
    expect(stripClusterPrefix(url)).toEqual({ name, upstreamPath });
  });

  it.each([
    "/", "/clusters", "/clusters/", "/clusters//x", "/clustersabc", "/clusters-abc/x", "/clusters/ab c/x",
    "/clusters/ab%2Fc/x", "/api/v1/clusters/abc", "/foo/clusters/abc", "clusters/abc", "/clusters/abc#frag", "",
  ])("%j is not a dashboard path", (url) => {
    expect(stripClusterPrefix(url)).toBeUndefined();
  });

  it("round-trips any valid name and rest of path by property", () => {
    const name = fc.stringMatching(/^[A-Za-z0-9._-]{1,40}$/);
    const rest = fc.stringMatching(/^(\/[a-z0-9._~%-]{0,12}){0,4}(\?[a-z0-9=&%]{0,20})?$/);
    fc.assert(
      fc.property(name, rest, (n, r) => {
        const got = stripClusterPrefix(`/clusters/${n}${r}`);
        const expected = r === "" || r.startsWith("?") ? `/${r}` : r;
        expect(got).toEqual({ name: n, upstreamPath: expected });
      }),
      { numRuns: 1000 },
    );
  });
});

describe("proxyHttp", () => {
  it("strips the prefix, keeps the query and rewrites the headers", async () => {
    const reply = await request("/clusters/c1/individual/plot?x=1&y=%20two", {
      headers: {
        connection: "keep-alive, x-hop-request",
        "x-hop-request": "dropped",
        "keep-alive": "timeout=5",
        "x-forwarded-for": "10.0.0.1",
        "x-kept": "yes",
        authorization: "Basic c2VjcmV0OnNlY3JldA==",
        cookie: "a=1; dask-gateway-session=secret; theme=dark",
      },
    });
    expect(reply.status).toBe(200);
    const seen = JSON.parse(reply.body) as { method: string; url: string; headers: Record<string, string> };
    expect(seen.method).toBe("GET");
    expect(seen.url).toBe("/individual/plot?x=1&y=%20two");
    expect(seen.headers.host).toBe(`${HOST}:${dashPort}`);
    expect(seen.headers["x-forwarded-for"]).toBe(`10.0.0.1, ${HOST}`);
    expect(seen.headers["x-forwarded-proto"]).toBe("http");
    expect(seen.headers["x-forwarded-host"]).toBe(`${HOST}:${frontPort}`);
    expect(seen.headers["x-kept"]).toBe("yes");
    expect(seen.headers["x-hop-request"]).toBeUndefined();
    expect(seen.headers["keep-alive"]).toBeUndefined();
    expect(seen.headers.authorization).toBeUndefined();
    expect(seen.headers.cookie).toBe("a=1; theme=dark");
  });

  it("maps /clusters/<name> to / on the dashboard", async () => {
    for (const path of ["/clusters/c1", "/clusters/c1/"]) {
      const reply = await request(path);
      expect((JSON.parse(reply.body) as { url: string }).url).toBe("/");
    }
  });

  it("keeps repeated response headers and drops the hop-by-hop ones", async () => {
    const reply = await request("/clusters/c1/cookies");
    expect(reply.body).toBe("ok");
    expect(reply.headers["set-cookie"]).toEqual(["a=1; Path=/", "b=2; Path=/"]);
    expect(reply.headers["x-hop-response"]).toBeUndefined();
  });

  it("streams a request body of 8 MB to the dashboard", async () => {
    const body = randomBytes(8 * 1024 * 1024);
    const reply = await request("/clusters/c1/upload", { method: "POST" }, body);
    const seen = JSON.parse(reply.body) as { method: string; bytes: number };
    expect(seen).toMatchObject({ method: "POST", bytes: body.length });
  });

  it("delivers a streamed response in pieces, without waiting for its end", async () => {
    // The dashboard sends its second piece only after the client has received the first: a buffering
    // proxy would deadlock here and the test would time out.
    const chunks = await new Promise<string[]>((resolve, reject) => {
      http.get({ host: HOST, port: frontPort, path: "/clusters/c1/stream", agent: false }, (res) => {
        const got: string[] = [];
        res.on("data", (d: Buffer) => {
          got.push(d.toString());
          if (got.length === 1) releaseStream();
        });
        res.on("end", () => resolve(got));
        res.on("error", reject);
      }).on("error", reject);
    });
    expect(chunks.length).toBeGreaterThanOrEqual(2);
    expect(chunks[0]).toBe("first piece;");
    expect(chunks.join("")).toBe("first piece;second piece");
  });

  it("answers 502 with an empty body when the dashboard is down", async () => {
    const reply = await request("/clusters/dead/status?x=1");
    expect(reply.status).toBe(502);
    expect(reply.body).toBe("");
    expect(reply.headers["content-length"]).toBe("0");
  });

  it("cuts the client off when the dashboard dies mid-body, instead of ending cleanly", async () => {
    const outcome = await new Promise<{ complete: boolean; body: string }>((resolve) => {
      http.get({ host: HOST, port: frontPort, path: "/clusters/c1/die", agent: false }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("error", () => undefined);
        res.on("close", () => resolve({ complete: res.complete, body }));
      }).on("error", () => resolve({ complete: false, body: "" }));
    });
    expect(outcome.complete).toBe(false);
  });
});

describe("proxyUpgrade", () => {
  function open(path: string): Promise<{ ws: WebSocket; first: string }> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://${HOST}:${frontPort}${path}`);
      ws.once("message", (data) => resolve({ ws, first: String(data) }));
      ws.once("error", reject);
    });
  }

  it("relays a WebSocket with the prefix stripped and the query kept, text and binary", async () => {
    const { ws, first } = await open("/clusters/c1/status/ws?bokeh-session-id=abc");
    expect(first).toBe(`hello /status/ws?bokeh-session-id=abc host=${HOST}:${dashPort}`);
    const next = () => new Promise<WebSocket.RawData>((resolve) => ws.once("message", resolve));
    ws.send("ping");
    expect(String(await next())).toBe("echo ping");
    const big = randomBytes(2 * 1024 * 1024);
    ws.send(big);
    expect(Buffer.from((await next()) as Buffer).equals(big)).toBe(true);
    const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
    ws.close(1000);
    expect(await closed).toBe(1000);
  });

  it("keeps several WebSockets apart", async () => {
    const sockets = await Promise.all([1, 2, 3, 4, 5].map((i) => open(`/clusters/c1/ws${i}`)));
    const replies = await Promise.all(
      sockets.map(({ ws }, i) => {
        const reply = new Promise<string>((resolve) => ws.once("message", (d) => resolve(String(d))));
        ws.send(`n${i}`);
        return reply;
      }),
    );
    expect(replies).toEqual(["echo n0", "echo n1", "echo n2", "echo n3", "echo n4"]);
    for (const { ws } of sockets) ws.close();
  });

  it("answers 502 on the socket when the dashboard is down", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`ws://${HOST}:${frontPort}/clusters/dead/ws`);
      ws.once("unexpected-response", (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.once("open", () => reject(new Error("opened a WebSocket to a dead dashboard")));
      ws.on("error", () => undefined);
    });
    expect(status).toBe(502);
  });
});
