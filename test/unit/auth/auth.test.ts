import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Authenticator, parseBasic, parseToken } from "../../../src/auth/authenticator.js";
import { hashPassword, verifyPassword } from "../../../src/auth/passwords.js";
import { sharedPasswordStore, usersFileStore } from "../../../src/auth/users.js";

const basic = (s: string) => "Basic " + Buffer.from(s).toString("base64");

describe("credentials parsing", () => {
  it("parses Basic and token headers and refuses malformed ones", () => {
    expect(parseBasic(basic("alice:pw:with:colons"))).toEqual({ name: "alice", password: "pw:with:colons" });
    for (const bad of [undefined, "", "Basic", "Basic !!!", basic("nocolon"), "Bearer x", "token abc"]) expect(parseBasic(bad)).toBeNull();
    expect(parseToken("token abc")).toBe("abc");
    expect(parseToken("Basic abc")).toBeNull();
  });
});

describe("passwords", () => {
  it("hashes and verifies", async () => {
    const hash = await hashPassword("s3cret");
    expect(hash).toMatch(/^scrypt\$/);
    expect(await verifyPassword("s3cret", hash)).toBe(true);
    expect(await verifyPassword("wrong", hash)).toBe(false);
    expect(await verifyPassword("s3cret", "plain")).toBe(false);
  });
});

describe("user stores", () => {
  it("shared password: any name, admins by name", async () => {
    const store = sharedPasswordStore("pw", ["boss"]);
    expect(await store.check("x@y", "pw")).toEqual({ name: "x@y", admin: false });
    expect(await store.check("boss", "pw")).toEqual({ name: "boss", admin: true });
    expect(await store.check("x", "nope")).toBeNull();
    expect(await store.check("", "pw")).toBeNull();
  });

  it("users file: hashed passwords only, clear errors", async () => {
    const dir = mkdtempSync(join(tmpdir(), "users-"));
    const file = join(dir, "users.yaml");
    writeFileSync(file, `users:\n  alice:\n    password: "${await hashPassword("a")}"\n    admin: true\n`);
    const store = usersFileStore(file, []);
    expect(await store.check("alice", "a")).toEqual({ name: "alice", admin: true });
    expect(await store.check("alice", "b")).toBeNull();
    expect(await store.check("mallory", "a")).toBeNull();
    writeFileSync(file, "users:\n  bob:\n    password: plain\n");
    expect(() => usersFileStore(file, [])).toThrow(/user 'bob' needs 'password' set to a hash/);
  });
});

describe("Authenticator", () => {
  it("issues one cookie per user that expires server-side", async () => {
    let now = 0;
    const auth = new Authenticator(sharedPasswordStore("pw", []), 300, () => now);
    const user = await auth.fromHeader(basic("alice:pw"), "127.0.0.1");
    expect(user?.name).toBe("alice");
    const c1 = auth.issueCookie(user!);
    expect(c1.maxAge).toBe(600);
    expect(auth.issueCookie(user!).value).toBe(c1.value);
    expect(auth.fromCookie(c1.value)?.name).toBe("alice");
    now = 301_000;
    expect(auth.fromCookie(c1.value)).toBeUndefined();
    expect(auth.cookieName).toMatch(/^dask-gateway-[0-9a-f]{32}$/);
  });
});
