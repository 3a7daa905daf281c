import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import tls from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { newKeypair } from "../../../src/tls/keypair.js";

describe("newKeypair", () => {
  it("has the reference's profile (CN=dask-internal, SAN with the bare name, PKCS#8 key) with an ECDSA P-256 key", async () => {
    const { cert, key } = await newKeypair("abc123");
    expect(key.startsWith("-----BEGIN PRIVATE KEY-----\n")).toBe(true);
    const dir = mkdtempSync(join(tmpdir(), "kp-"));
    writeFileSync(join(dir, "c.pem"), cert);
    writeFileSync(join(dir, "k.pem"), key);
    const text = execFileSync("openssl", ["x509", "-in", join(dir, "c.pem"), "-noout", "-text"], { encoding: "utf8" });
    expect(text).toMatch(/Subject: CN ?= ?dask-internal/);
    expect(text).toMatch(/Issuer: CN ?= ?dask-internal/);
    expect(text).toMatch(/DNS:abc123, DNS:dask-internal, DNS:skein-internal/);
    expect(text).toMatch(/Public-Key: \(256 bit\)/);
    expect(text).toMatch(/ecdsa-with-SHA256/);
    expect(text).toMatch(/NIST CURVE: P-256/);
    expect(execFileSync("openssl", ["pkey", "-in", join(dir, "k.pem"), "-noout", "-text"], { encoding: "utf8" })).toMatch(/256 bit/);
  });

  it("works for mutual TLS as CA, server and client certificate at once", async () => {
    const { cert, key } = await newKeypair("c1");
    const server = tls.createServer({ cert, key, ca: [cert], requestCert: true, rejectUnauthorized: true }, (s) => s.end("hello"));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    const reply = await new Promise<string>((resolve, reject) => {
      const c = tls.connect({ port, host: "127.0.0.1", cert, key, ca: [cert], servername: "daskgateway-c1", checkServerIdentity: () => undefined }, () => undefined);
      let data = "";
      c.on("data", (d) => (data += d));
      c.on("end", () => resolve(data));
      c.on("error", reject);
    });
    server.close();
    expect(reply).toBe("hello");
  });

  it("keeps the event loop free while generating", async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    await Promise.all(Array.from({ length: 6 }, (_, i) => newKeypair(`c${i}`)));
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(0);
  });
});
