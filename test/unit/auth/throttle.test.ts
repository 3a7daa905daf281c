import { describe, expect, it } from "vitest";
import { FailureThrottle, Throttled } from "../../../src/auth/throttle.js";

const RIGHT = "pw";
/** A password check that answers the user for the right password, else null. */
const check = (password: string) => async () => (password === RIGHT ? { name: "alice" } : null);

function make(maxFailures = 3, windowSeconds = 60, maxKeys?: number) {
  const clock = { now: 0 };
  const seen = { failed: 0, refused: 0, throttled: [] as string[] };
  const throttle = new FailureThrottle({
    maxFailures, windowSeconds, maxKeys, now: () => clock.now,
    events: {
      failed: () => seen.failed++,
      refused: () => seen.refused++,
      throttled: (name, address, seconds) => seen.throttled.push(`${name}@${address} ${seconds}s`),
    },
  });
  const attempt = (password: string, name = "alice", address = "10.0.0.1") => throttle.guard(name, address, check(password));
  return { throttle, clock, seen, attempt };
}

/** The Retry-After of a refused attempt, or "checked" when the attempt got through. */
async function retryAfter(p: Promise<unknown>): Promise<number | "checked"> {
  try {
    await p;
    return "checked";
  } catch (err) {
    if (err instanceof Throttled) return err.retryAfter;
    throw err;
  }
}

/** A password check that takes a few milliseconds and answers `answer`; `most` is the most that ran at once. */
function counted<T>(answer: T) {
  const state = { running: 0, most: 0, check: async (): Promise<T> => {
    state.running++;
    state.most = Math.max(state.most, state.running);
    await new Promise((resolve) => setTimeout(resolve, 5));
    state.running--;
    return answer;
  } };
  return state;
}

describe("FailureThrottle", () => {
  it("refuses a pair after maxFailures wrong passwords, even with the right one, until the window has passed", async () => {
    const { clock, seen, attempt } = make();
    for (let i = 0; i < 3; i++) expect(await attempt("wrong")).toBeNull();
    expect(seen.throttled).toEqual(["alice@10.0.0.1 60s"]);
    expect(await retryAfter(attempt(RIGHT))).toBe(60);
    clock.now = 59_500;
    expect(await retryAfter(attempt("wrong"))).toBe(1);
    expect(seen).toMatchObject({ failed: 3, refused: 2 });
    expect(seen.throttled).toHaveLength(1); // reported once, refusals do not lengthen it
    clock.now = 60_000;
    expect(await attempt(RIGHT)).toEqual({ name: "alice" });
  });

  it("leaves other user names and other addresses alone", async () => {
    const { attempt } = make();
    for (let i = 0; i < 3; i++) await attempt("wrong");
    expect(await attempt(RIGHT, "bob")).toEqual({ name: "alice" });
    expect(await attempt(RIGHT, "alice", "10.0.0.2")).toEqual({ name: "alice" });
    expect(await retryAfter(attempt(RIGHT))).toBe(60);
  });

  it("resets a pair's count on success", async () => {
    const { throttle, attempt } = make();
    await attempt("wrong");
    await attempt("wrong");
    await attempt(RIGHT);
    expect(throttle.size).toBe(0);
    await attempt("wrong");
    await attempt("wrong");
    expect(await attempt(RIGHT)).toEqual({ name: "alice" });
  });

  it("counts within a window that begins at the first failure", async () => {
    const { clock, attempt } = make();
    await attempt("wrong");
    await attempt("wrong");
    clock.now = 60_000; // the window is over: the two failures are forgotten
    await attempt("wrong");
    await attempt("wrong");
    expect(await attempt(RIGHT)).toEqual({ name: "alice" });
  });

  it("runs at most maxFailures checks of a pair at once: a burst of guesses waits, then is refused", async () => {
    const { throttle } = make(3);
    const slow = counted(null);
    const burst = await Promise.all(Array.from({ length: 20 }, () => retryAfter(throttle.guard("alice", "10.0.0.1", slow.check))));
    expect(slow.most).toBe(3);
    // Three run; two more take the slots the first two failures free; the third failure refuses the rest.
    expect(burst.filter((r) => r === "checked")).toHaveLength(5);
    expect(burst.filter((r) => r === 60)).toHaveLength(15);
  });

  it("queues parallel sign-ins of a real user beyond the slots, and never refuses them", async () => {
    for (const maxFailures of [1, 3]) {
      const { throttle } = make(maxFailures);
      const slow = counted({ name: "alice" });
      const burst = await Promise.all(Array.from({ length: 10 }, () => retryAfter(throttle.guard("alice", "10.0.0.1", slow.check))));
      expect(burst.every((r) => r === "checked")).toBe(true);
      expect(slow.most).toBe(maxFailures);
      expect(throttle.size).toBe(0);
    }
  });

  it("keeps at most maxKeys pairs, dropping the oldest, and forgets expired ones", async () => {
    const { throttle, clock, attempt } = make(3, 60, 100);
    for (let i = 0; i < 3; i++) await attempt("wrong", "victim-of-nobody");
    for (let i = 0; i < 1000; i++) await attempt("wrong", `name-${i}`, `10.1.${i >> 8}.${i & 255}`);
    expect(throttle.size).toBe(100);
    // The refused pair went to the back of the line when it was refused, yet 1000 newer pairs pushed it out.
    expect(await attempt(RIGHT, "victim-of-nobody")).toEqual({ name: "alice" });
    clock.now = 61_000;
    await attempt("wrong", "late");
    expect(throttle.size).toBe(1);
  });

  it("keeps long user names as a digest", async () => {
    const { throttle, seen, attempt } = make(1);
    const long = "x".repeat(100_000);
    await attempt("wrong", long);
    expect(await retryAfter(attempt(RIGHT, long))).toBe(60);
    expect(await attempt(RIGHT, long + "y")).toEqual({ name: "alice" });
    expect(seen.throttled[0]!.length).toBeLessThan(200);
    expect(throttle.size).toBe(1);
  });

  it("never refuses nor remembers anything with maxFailures 0", async () => {
    const { throttle, seen, attempt } = make(0);
    for (let i = 0; i < 50; i++) expect(await attempt("wrong")).toBeNull();
    expect(await attempt(RIGHT)).toEqual({ name: "alice" });
    expect(throttle.size).toBe(0);
    expect(seen).toEqual({ failed: 0, refused: 0, throttled: [] });
    expect(await FailureThrottle.off().guard("a", "b", check("wrong"))).toBeNull();
  });
});
