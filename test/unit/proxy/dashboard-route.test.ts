/**
 * The dashboard WebSocket's checks, in the order of the HTTP route's: 401 without credentials, 404 for a
 * cluster that does not exist (for every user, before any 403), 403 for someone else's cluster.
 */
import http from "node:http";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Authenticator } from "../../../src/auth/authenticator.js";
import { sharedPasswordStore } from "../../../src/auth/users.js";
import { clientAddressOf } from "../../../src/proxy/client-address.js";
import { dashboardUpgrade } from "../../../src/proxy/dashboard-route.js";

const HOST = "127.0.0.1";
let server: http.Server;
let port: number;

beforeAll(async () => {
  const auth = new Authenticator(sharedPasswordStore("pw", ["root"]), 300);
  const owners = new Map([["alices", "alice"]]);
  server = http.createServer((_req, res) => res.end());
  server.on("upgrade", dashboardUpgrade({
    auth,
    clientAddress: clientAddressOf([]),
    exists: (name) => owners.has(name),
    canAct: (user, name) => owners.has(name) && (user.admin || owners.get(name) === user.name),
    target: () => undefined,
  }));
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** The status code of a WebSocket handshake to `path` as `user` (no credentials when null). */
function handshake(path: string, user: string | null): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, HOST, () => {
      const auth = user ? `Authorization: Basic ${Buffer.from(`${user}:pw`).toString("base64")}\r\n` : "";
      socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${auth}\r\n`);
    });
    let head = "";
    socket.on("data", (d: Buffer) => {
      head += d.toString("latin1");
      const line = /^HTTP\/1\.1 (\d{3})/.exec(head);
      if (line) {
        resolve(Number(line[1]));
        socket.destroy();
      }
    });
    socket.on("error", reject);
  });
}

describe("dashboard WebSocket authorization", () => {
  it("challenges a caller without credentials", async () => {
    expect(await handshake("/clusters/alices/status/ws", null)).toBe(401);
    expect(await handshake("/clusters/nobodys/status/ws", null)).toBe(401);
  });

  it("answers 404 for an unknown cluster to every user, admins included, as the HTTP route does", async () => {
    for (const user of ["alice", "bob", "root"]) expect(await handshake("/clusters/nobodys/status/ws", user)).toBe(404);
  });

  it("forbids someone else's cluster and lets the owner and admins past the checks", async () => {
    expect(await handshake("/clusters/alices/status/ws", "bob")).toBe(403);
    // Past the permission check; the cluster is not running here, so there is no dashboard to reach.
    expect(await handshake("/clusters/alices/status/ws", "alice")).toBe(404);
    expect(await handshake("/clusters/alices/status/ws", "root")).toBe(404);
  });
});
