import http from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import Router from "@koa/router";
import Koa from "koa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addLogRoutes } from "../../../src/api/logs.js";
import { Authenticator } from "../../../src/auth/authenticator.js";
import { sharedPasswordStore } from "../../../src/auth/users.js";
import type { Backend } from "../../../src/backends/backend.js";
import type { ClusterManager } from "../../../src/clusters/manager.js";
import { PublicError } from "../../../src/errors.js";
import { Job, type ClusterRecord } from "../../../src/clusters/model.js";
import type { LogArchive } from "../../../src/logs/archive.js";
import { createLogger } from "../../../src/logging.js";

const NAME = "a".repeat(32);
const WORKER = "b".repeat(32);
const cluster = {
  name: NAME, user: "alice", status: Job.RUNNING, target: Job.RUNNING, state: {}, config: {},
  workers: new Map([[WORKER, { name: WORKER, status: Job.RUNNING, target: Job.RUNNING, state: { pid: 1 } }]]),
} as unknown as ClusterRecord;
/** Every source the backend handed out, to check that each was destroyed. */
const sources: Readable[] = [];
const backend = {
  logComponents: async () => ["scheduler", WORKER],
  logs: async () => {
    const source = new Readable({ read() {} }); // a follower: never ends by itself
    source.push("2026-12-01T10:00:00.000Z hello\n");
    sources.push(source);
    return source;
  },
} as unknown as Backend;
const manager = { get: (name: string) => (name === NAME ? cluster : undefined), schedulerLaunch: () => ({}) } as unknown as ClusterManager;
const auth = new Authenticator(sharedPasswordStore("pw", []), 300);
const headers = { Authorization: "Basic " + Buffer.from("alice:pw").toString("base64") };
let server: http.Server;
let base = "";

beforeAll(async () => {
  const app = new Koa();
  app.silent = true; // as src/api/app.ts: a client that leaves mid-stream is no error to log
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      ctx.status = err instanceof PublicError ? err.status : 500;
      ctx.body = { error: (err as Error).message };
    }
  });
  const router = new Router();
  addLogRoutes({ manager, auth, backend, archive: {} as LogArchive, maxStreams: 1, log: createLogger("silent", "json"), checkMs: 50 })(router);
  app.use(router.routes());
  server = http.createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/clusters/${NAME}/logs`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe("the log routes", () => {
  it("lists the components, live ones first", async () => {
    expect(await (await fetch(base, { headers })).json()).toEqual({
      name: NAME, status: "RUNNING",
      components: [{ name: "scheduler", kind: "scheduler", live: true, kept: false }, { name: WORKER, kind: "worker", live: true, kept: false }],
    });
  });

  it("releases the source and the slot when the client leaves", async () => {
    const abort = new AbortController();
    const res = await fetch(`${base}/${WORKER}?follow=1`, { headers, signal: abort.signal });
    const reader = res.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("2026-12-01T10:00:00.000Z hello\n");
    expect((await fetch(`${base}/scheduler`, { headers })).status).toBe(429); // logs.max_streams is 1
    abort.abort();
    await expect.poll(() => sources.at(-1)!.destroyed).toBe(true);
    await expect.poll(async () => (await fetch(`${base}/scheduler?tail=1`, { headers }).then(async (r) => {
      await r.body?.cancel();
      return r.status;
    }))).not.toBe(429);
  });

  it("ends a follower cleanly once its worker has stopped", async () => {
    await expect.poll(() => sources.every((s) => s.destroyed)).toBe(true);
    const res = await fetch(`${base}/${WORKER}?follow=1`, { headers });
    const worker = cluster.workers.get(WORKER)!;
    setTimeout(() => (worker.status = Job.STOPPED), 100);
    const started = Date.now();
    expect(await res.text()).toBe("2026-12-01T10:00:00.000Z hello\n"); // the response ends: text() resolves
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(sources.at(-1)!.destroyed).toBe(true);
    worker.status = Job.RUNNING;
  });

  it("names a bad parameter or component", async () => {
    expect(await (await fetch(`${base}/scheduler?tail=lots`, { headers })).json()).toEqual({ error: expect.stringMatching(/^tail /) });
    expect((await fetch(`${base}/nobody`, { headers })).status).toBe(404);
  });
});
