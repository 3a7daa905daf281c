/** Choosing the relay path from the setting `relay` (the paths themselves: public-listener.test.ts). */
import { describe, expect, it } from "vitest";
import { selectRelay } from "../../../src/proxy/relay.js";

describe("selectRelay", () => {
  it("js is Node streams, whatever the addon", () => {
    expect(selectRelay("js")).toEqual({ path: expect.objectContaining({ name: "js" }), why: "relay=js" });
  });

  // make test-unit builds the addon first (scripts/native.sh); on Linux it must load.
  it.runIf(process.platform === "linux")("auto and splice take the native addon on Linux, and say where it came from", () => {
    for (const mode of ["auto", "splice"] as const) {
      const { path, why } = selectRelay(mode);
      expect(path.name).toBe("splice");
      expect(why).toMatch(new RegExp(`^relay=${mode}: native relay loaded from .*native/build/relay\\.node$`));
    }
  });
});
