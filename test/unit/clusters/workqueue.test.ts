import { describe, expect, it } from "vitest";
import { WorkQueue } from "../../../src/clusters/workqueue.js";

describe("WorkQueue", () => {
  it("never runs a key twice at once and reruns it when enqueued meanwhile", async () => {
    let running = 0;
    let maxRunning = 0;
    let runs = 0;
    const q = new WorkQueue(async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      runs++;
      await new Promise((r) => setTimeout(r, 10));
      running--;
    }, { parallelism: 4, backoffBaseMs: 1, backoffMaxMs: 10, onError: () => undefined });
    q.put("a");
    q.put("a");
    await new Promise((r) => setTimeout(r, 2));
    q.put("a");
    q.put("a");
    await new Promise((r) => setTimeout(r, 50));
    await q.idle();
    expect(maxRunning).toBe(1);
    expect(runs).toBe(2);
  });

  it("retries failures with backoff", async () => {
    let attempts = 0;
    const errors: number[] = [];
    const q = new WorkQueue(async () => {
      attempts++;
      if (attempts < 3) throw new Error("boom");
    }, { parallelism: 1, backoffBaseMs: 5, backoffMaxMs: 20, onError: (_k, _e, n) => errors.push(n) });
    q.put("k");
    await new Promise((r) => setTimeout(r, 100));
    expect(attempts).toBe(3);
    expect(errors).toEqual([1, 2]);
    q.close();
  });
});
