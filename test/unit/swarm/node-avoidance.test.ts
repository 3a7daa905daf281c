import { describe, expect, it } from "vitest";
import { NodeAvoidance } from "../../../src/backends/swarm/node-avoidance.js";

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (seconds: number) => void (t += seconds * 1000) };
}

describe("NodeAvoidance", () => {
  it("avoids a node for the base back-off, with Docker's reason, for that cluster only", () => {
    const time = clock();
    const a = new NodeAvoidance(60, time.now);
    expect(a.fail("c1", "id-b", "host-b", "task rejected: No such image: x")).toBe(60);
    expect(a.avoided("c1")).toEqual([{ nodeId: "id-b", hostname: "host-b", reason: "task rejected: No such image: x", secondsLeft: 60, failures: 1 }]);
    expect(a.avoided("c2")).toEqual([]);
    time.advance(45);
    expect(a.avoided("c1")[0]!.secondsLeft).toBe(15);
  });

  it("uses a node again once its back-off expired", () => {
    const time = clock();
    const a = new NodeAvoidance(60, time.now);
    a.fail("c1", "id-b", "host-b", "x");
    time.advance(60);
    expect(a.avoided("c1")).toEqual([]);
  });

  it("doubles the back-off for each further failure in a row, up to 8 times", () => {
    const time = clock();
    const a = new NodeAvoidance(60, time.now);
    const backoffs: number[] = [];
    for (let i = 0; i < 6; i++) {
      backoffs.push(a.fail("c1", "id-b", "host-b", `failure ${i}`));
      time.advance(backoffs.at(-1)!);
    }
    expect(backoffs).toEqual([60, 120, 240, 480, 480, 480]);
  });

  it("does not double for failures reported while the node is already avoided (starts placed before)", () => {
    const time = clock();
    const a = new NodeAvoidance(60, time.now);
    a.fail("c1", "id-b", "host-b", "first");
    time.advance(10);
    expect(a.fail("c1", "id-b", "host-b", "second")).toBe(50);
    expect(a.avoided("c1")[0]!.reason).toBe("second");
  });

  it("starts over once a worker of the cluster started on the node, and forgets a stopped cluster", () => {
    const time = clock();
    const a = new NodeAvoidance(60, time.now);
    a.fail("c1", "id-b", "host-b", "x");
    time.advance(60);
    a.fail("c1", "id-b", "host-b", "x");
    a.succeeded("c1", "id-b");
    expect(a.avoided("c1")).toEqual([]);
    expect(a.fail("c1", "id-b", "host-b", "x")).toBe(60);
    a.fail("c1", "id-c", "host-c", "y");
    a.forget("c1");
    expect(a.avoided("c1")).toEqual([]);
    expect(a.fail("c1", "id-c", "host-c", "y")).toBe(60);
  });
});
