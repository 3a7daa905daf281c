import http from "node:http";
import type { AddressInfo } from "node:net";
import Koa from "koa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Authenticator } from "../../../src/auth/authenticator.js";
import { sharedPasswordStore } from "../../../src/auth/users.js";
import { CsrfTokens, csrfGuard } from "../../../src/web/csrf.js";

const auth = new Authenticator(sharedPasswordStore("pw", []), 300);
const tokens = new CsrfTokens();
let server: http.Server;
let base = "";

beforeAll(async () => {
  const app = new Koa();
  app.use(csrfGuard(auth, tokens, "/ui/session", "https://gateway.example"));
  app.use((ctx) => {
    ctx.body = { passed: true };
  });
  server = http.createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

async function status(path: string, method: string, headers: Record<string, string>): Promise<number> {
  return (await fetch(base + path, { method, headers })).status;
}

describe("the CSRF guard", () => {
  const page = auth.openPageSession({ name: "alice", admin: false }, 600);
  const api = auth.issueCookie({ name: "alice", admin: false }).value;
  const cookie = (value: string) => `${auth.cookieName}=${value}`;
  const good = () => ({ Cookie: cookie(page), "Sec-Fetch-Site": "same-origin", Origin: base, "X-CSRF-Token": tokens.tokenFor(page) });

  it("lets the page's own state changes through: same origin and the session's token", async () => {
    expect(await status("/api/v1/clusters/x", "DELETE", good())).toBe(200);
    const { ["Sec-Fetch-Site"]: _site, ...originOnly } = good();
    expect(await status("/api/v1/clusters/x", "DELETE", originOnly)).toBe(200);
    expect(await status("/api/v1/clusters/x", "DELETE", { ...good(), Origin: "https://gateway.example" })).toBe(200); // public_url behind a proxy
  });

  it("refuses a forged request: another site, a missing or wrong token, no origin at all", async () => {
    expect(await status("/api/v1/clusters/x", "DELETE", { ...good(), "Sec-Fetch-Site": "cross-site" })).toBe(403);
    expect(await status("/api/v1/clusters/x", "DELETE", { ...good(), "Sec-Fetch-Site": "same-site" })).toBe(403);
    expect(await status("/api/v1/clusters/x", "POST", { ...good(), Origin: "https://evil.example" })).toBe(403);
    expect(await status("/api/v1/clusters/x", "POST", { ...good(), "X-CSRF-Token": "0".repeat(64) })).toBe(403);
    const { ["X-CSRF-Token"]: _token, ...noToken } = good();
    expect(await status("/api/v1/clusters/x", "POST", noToken)).toBe(403);
    expect(await status("/api/v1/clusters/x", "POST", { Cookie: cookie(page), "X-CSRF-Token": tokens.tokenFor(page) })).toBe(403);
  });

  it("exempts reads, requests with Authorization, and API cookies (the Python client's)", async () => {
    expect(await status("/api/v1/clusters/", "GET", { Cookie: cookie(page), "Sec-Fetch-Site": "cross-site" })).toBe(200);
    expect(await status("/api/v1/clusters/x", "DELETE", { Cookie: cookie(page), Authorization: "Basic eDp5", "Sec-Fetch-Site": "cross-site" })).toBe(200);
    expect(await status("/api/v1/clusters/x", "DELETE", { Cookie: cookie(api) })).toBe(200);
    expect(await status("/api/v1/clusters/x", "DELETE", {})).toBe(200);
  });

  it("checks the origin of a sign-in, which has no session yet", async () => {
    expect(await status("/ui/session", "POST", { Origin: base })).toBe(200);
    expect(await status("/ui/session", "POST", { Origin: "https://evil.example" })).toBe(403);
    expect(await status("/ui/session", "POST", { "Sec-Fetch-Site": "cross-site" })).toBe(403);
  });

  it("binds a token to its session, and a closed session needs none (it authenticates nobody)", async () => {
    const other = auth.openPageSession({ name: "bob", admin: false }, 600);
    expect(tokens.matches(page, tokens.tokenFor(other))).toBe(false);
    auth.closePageSession(other);
    expect(auth.isPageSession(other)).toBe(false);
    expect(auth.fromCookie(other)).toBeUndefined();
    expect(auth.fromCookie(page)).toEqual({ name: "alice", admin: false });
  });
});
