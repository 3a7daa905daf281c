import { describe, expect, it } from "vitest";
import { CreateRate } from "../../../src/clusters/create-rate.js";
import { PublicError } from "../../../src/errors.js";

describe("CreateRate", () => {
  it("refuses a user's creation beyond the limit per minute with 429 and the wait, counting each user alone", () => {
    const clock = { now: 0 };
    const rate = new CreateRate(2, () => clock.now);
    rate.take("alice");
    clock.now = 20_000;
    rate.take("alice");
    rate.take("bob");
    let refused: unknown;
    try {
      rate.take("alice");
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(PublicError);
    expect(refused).toMatchObject({ status: 429, retryAfter: 40 });
    expect((refused as Error).message).toMatch(/limits\.create_rate; try again in 40 s$/);
    clock.now = 60_000; // the first creation has left the minute; the refused one was not recorded
    rate.take("alice");
    expect(() => rate.take("alice")).toThrow(PublicError);
  });
});
