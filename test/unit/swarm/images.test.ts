import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type Docker from "dockerode";
import { describe, expect, it } from "vitest";
import { BackendError } from "../../../src/backends/backend.js";
import { isPinned, parseRegistry, qualify, readRegistryAuth, resolveImage } from "../../../src/backends/swarm/images.js";

const DIGEST = "sha256:" + "c".repeat(64);

/** A fake engine answering GET /distribution/<ref>/json as dockerode's image.distribution() does. */
function engine(answer: (ref: string, auth: unknown) => unknown): { docker: Docker; asked: string[]; auths: unknown[] } {
  const asked: string[] = [];
  const auths: unknown[] = [];
  const docker = {
    getImage: (ref: string) => ({
      distribution: async (opts: { authconfig?: unknown }) => {
        asked.push(ref);
        auths.push(opts.authconfig);
        return answer(ref, opts.authconfig);
      },
    }),
  } as unknown as Docker;
  return { docker, asked, auths };
}

describe("image references", () => {
  it("qualifies names without a registry host with the configured registry", () => {
    expect(qualify("stack:1", "127.0.0.1:5000")).toBe("127.0.0.1:5000/stack:1");
    expect(qualify("team/stack:1", "reg.example.org/dask")).toBe("reg.example.org/dask/team/stack:1");
    expect(qualify("docker.io/daskdev/dask:latest", "127.0.0.1:5000")).toBe("docker.io/daskdev/dask:latest");
    expect(qualify("localhost/x", "r:1")).toBe("localhost/x");
    expect(qualify("stack:1", null)).toBe("stack:1");
  });

  it("checks swarm.registry and names the setting", () => {
    expect(parseRegistry("reg.example.org:5000/team/")).toBe("reg.example.org:5000/team");
    expect(() => parseRegistry("http://reg")).toThrow(/swarm.registry: expected host\[:port\]\[\/prefix\]/);
    expect(isPinned(`r/x@${DIGEST}`)).toBe(true);
    expect(isPinned("r/x:1")).toBe(false);
  });

  it("pins an image by the digest the registry reports, with the credentials", async () => {
    const fake = engine(() => ({ Descriptor: { digest: DIGEST } }));
    const auth = { username: "u", password: "p", serveraddress: "r:1" };
    expect(await resolveImage(fake.docker, "stack:1", "r:1", auth)).toBe(`r:1/stack:1@${DIGEST}`);
    expect(fake.asked).toEqual(["r:1/stack:1"]);
    expect(fake.auths).toEqual([auth]);
  });

  it("asks nothing for a pinned reference or without a registry", async () => {
    const fake = engine(() => { throw new Error("not asked"); });
    expect(await resolveImage(fake.docker, `r:1/x@${DIGEST}`, "r:1", null)).toBe(`r:1/x@${DIGEST}`);
    expect(await resolveImage(fake.docker, "x:1", null, null)).toBe("x:1");
    expect(fake.asked).toEqual([]);
  });

  it("fails with Docker's reason when the registry lacks the image", async () => {
    const fake = engine(() => { throw Object.assign(new Error("HTTP 404"), { json: { message: "manifest unknown" } }); });
    const err = await resolveImage(fake.docker, "nope:1", "r:1", null).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as Error).message).toBe("image r:1/nope:1 cannot be pulled from its registry: manifest unknown");
  });

  it("reads credentials from a file and never echoes them in an error", () => {
    const dir = mkdtempSync(join(tmpdir(), "dgw-auth-"));
    const good = join(dir, "good.json");
    writeFileSync(good, JSON.stringify({ username: "u", password: "s3cret", serveraddress: "r:1" }));
    expect(readRegistryAuth(good)).toEqual({ username: "u", password: "s3cret", serveraddress: "r:1" });
    const empty = join(dir, "empty.json");
    writeFileSync(empty, "{}");
    expect(readRegistryAuth(empty)).toBeNull();
    expect(readRegistryAuth(null)).toBeNull();
    const bad = join(dir, "bad.json");
    writeFileSync(bad, "s3cret-not-json");
    expect(() => readRegistryAuth(bad)).toThrow(/not valid JSON/);
    expect(() => readRegistryAuth(bad)).not.toThrow(/s3cret/);
  });
});
