/**
 * The throttle at the edges of the real Koa application: the API's Basic credentials, the page's sign-in and the
 * dashboard's WebSocket answer 429 with Retry-After once an address failed too often for a user name; the
 * session cookie, other names and other addresses go on.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../../src/api/app.js";
import { Authenticator } from "../../../src/auth/authenticator.js";
import { FailureThrottle } from "../../../src/auth/throttle.js";
import { sharedPasswordStore } from "../../../src/auth/users.js";
import type { ClusterManager } from "../../../src/clusters/manager.js";
import { createLogger } from "../../../src/logging.js";
import { Metrics } from "../../../src/metrics.js";
import { clientAddressOf } from "../../../src/proxy/client-address.js";
import { dashboardUpgrade } from "../../../src/proxy/dashboard-route.js";
import { CsrfTokens } from "../../../src/web/csrf.js";
import type { LiveHub } from "../../../src/web/live.js";
import { addWebRoutes } from "../../../src/web/page.js";

const HOST = "127.0.0.1";
const metrics = new Metrics(() => ({}));
const throttle = new FailureThrottle({
  maxFailures: 3, windowSeconds: 60,
  events: { failed: () => metrics.authFailures.inc(), refused: () => metrics.authThrottled.inc() },
});
const auth = new Authenticator(sharedPasswordStore("pw", []), 300, Date.now, throttle);
/** 127.0.0.3 stands for the operator's reverse proxy. */
const clientAddress = clientAddressOf(["127.0.0.3"]);
let server: http.Server;
let port = 0;

beforeAll(async () => {
  const app = createApp({
    manager: {} as ClusterManager, auth, log: createLogger("silent", "json"), version: "test", maxBodyBytes: 65536, metrics, clientAddress,
    extraRoutes: [addWebRoutes({ auth, tokens: new CsrfTokens(), live: {} as LiveHub, sessionMaxAge: 600, secureCookies: false })],
  });
  server = http.createServer(app.callback());
  server.on("upgrade", dashboardUpgrade({ auth, clientAddress, exists: () => true, canAct: () => true, target: () => undefined }));
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request from `from` (a loopback address of this machine). */
function request(method: string, path: string, headers: Record<string, string>, body?: string, from = HOST): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: HOST, port, method, path, headers, localAddress: from }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const basic = (user: string, password: string) => ({ Authorization: "Basic " + Buffer.from(`${user}:${password}`).toString("base64") });
const whoami = (user: string, password: string, from?: string, forwardedFor?: string) =>
  request("GET", "/api/v1/whoami", { ...basic(user, password), ...(forwardedFor ? { "X-Forwarded-For": forwardedFor } : {}) }, undefined, from);
const signIn = (name: string, password: string) =>
  request("POST", "/ui/session", { "Content-Type": "application/json" }, JSON.stringify({ name, password }));

/** The status line of a dashboard WebSocket handshake with Basic credentials. */
function handshake(user: string, password: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, HOST, () => {
      const auth = basic(user, password).Authorization;
      socket.write(`GET /clusters/${"a".repeat(32)}/status/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nAuthorization: ${auth}\r\n\r\n`);
    });
    let head = "";
    socket.on("data", (d: Buffer) => (head += d.toString("latin1")));
    socket.on("end", () => resolve(head));
    socket.on("error", reject);
  });
}

describe("throttled sign-ins at the edges", () => {
  it("API: 429 with Retry-After after max_failures wrong passwords, the right one included; a session cookie goes on", async () => {
    const ok = await whoami("alice", "pw");
    expect(ok.status).toBe(200);
    const cookie = ok.headers["set-cookie"]![0]!.split(";")[0]!;
    for (let i = 0; i < 3; i++) expect((await whoami("alice", "wrong")).status).toBe(401);
    for (const password of ["wrong", "pw"]) {
      const refused = await whoami("alice", password);
      expect(refused.status).toBe(429);
      expect(Number(refused.headers["retry-after"])).toBeGreaterThan(55);
      expect(JSON.parse(refused.body)).toEqual({ error: expect.stringMatching(/^too many failed sign-ins for this user name from your address; try again in \d+ s$/) });
      expect(refused.headers["www-authenticate"]).toBeUndefined();
    }
    expect((await request("GET", "/api/v1/whoami", { Cookie: cookie })).status).toBe(200);
    expect((await whoami("bob", "pw")).status).toBe(200);
    expect((await whoami("alice", "pw", "127.0.0.2")).status).toBe(200);
    const scraped = await metrics.registry.metrics();
    expect(scraped).toMatch(/^dask_gateway_auth_failures_total 3$/m);
    expect(scraped).toMatch(/^dask_gateway_auth_throttled_total 2$/m);
  });

  it("page sign-in: the same count, answered as JSON the form shows", async () => {
    for (let i = 0; i < 3; i++) expect((await signIn("carol", "wrong")).status).toBe(401);
    const refused = await signIn("carol", "pw");
    expect(refused.status).toBe(429);
    expect(refused.headers["retry-after"]).toMatch(/^\d+$/);
    expect(JSON.parse(refused.body).error).toMatch(/too many failed sign-ins/);
    // The API and the page count together: it is the same user name from the same address.
    expect((await whoami("carol", "pw")).status).toBe(429);
    expect((await signIn("dave", "pw")).status).toBe(200);
  });

  it("dashboard WebSocket: 429 with Retry-After", async () => {
    for (let i = 0; i < 3; i++) expect(await handshake("erin", "wrong")).toMatch(/^HTTP\/1\.1 401 /);
    const refused = await handshake("erin", "pw");
    expect(refused).toMatch(/^HTTP\/1\.1 429 Too Many Requests\r\n/);
    expect(refused).toMatch(/\r\nRetry-After: \d+\r\n/);
  });

  it("behind a trusted proxy, counts each client under the address it forwards; X-Forwarded-For from others is ignored", async () => {
    const proxy = "127.0.0.3";
    for (let i = 0; i < 3; i++) expect((await whoami("frank", "wrong", proxy, "203.0.113.9, 198.51.100.7")).status).toBe(401);
    expect((await whoami("frank", "pw", proxy, "198.51.100.7")).status).toBe(429);
    // A client cannot pick the address it is counted under: only what the trusted proxy appended is believed.
    expect((await whoami("frank", "pw", proxy, "192.0.2.1, 198.51.100.7")).status).toBe(429);
    expect((await whoami("frank", "pw", proxy, "198.51.100.8")).status).toBe(200);
    // The proxy itself, and an untrusted peer claiming to forward, count under their own addresses.
    for (let i = 0; i < 3; i++) expect((await whoami("grace", "wrong", "127.0.0.4", `198.51.100.${i}`)).status).toBe(401);
    expect((await whoami("grace", "pw", "127.0.0.4", "198.51.100.99")).status).toBe(429);
    expect((await whoami("grace", "pw", proxy)).status).toBe(200);
  });
});
