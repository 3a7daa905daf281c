import type { IncomingMessage } from "node:http";
import { describe, expect, it } from "vitest";
import { clientAddressOf } from "../../../src/proxy/client-address.js";

const req = (peer: string | undefined, forwardedFor?: string | string[]) =>
  ({ socket: { remoteAddress: peer }, headers: forwardedFor === undefined ? {} : { "x-forwarded-for": forwardedFor } }) as unknown as IncomingMessage;

describe("clientAddressOf", () => {
  it("answers the peer, IPv4-mapped addresses as IPv4, and ignores X-Forwarded-For without trusted proxies", () => {
    const of = clientAddressOf([]);
    expect(of(req("10.0.0.5", "203.0.113.1"))).toBe("10.0.0.5");
    expect(of(req("::ffff:10.0.0.5"))).toBe("10.0.0.5");
    expect(of(req(undefined))).toBe("");
  });

  it("reads X-Forwarded-For from the right past trusted proxies, and never believes what the client wrote", () => {
    const of = clientAddressOf(["10.0.0.5", "172.16.0.0/12", "fd00::/8"]);
    expect(of(req("10.0.0.5", "203.0.113.1"))).toBe("203.0.113.1");
    expect(of(req("::ffff:10.0.0.5", "192.0.2.66, 203.0.113.1, 172.20.1.1"))).toBe("203.0.113.1");
    expect(of(req("fd00::1", ["192.0.2.66", "2001:db8::7"]))).toBe("2001:db8::7");
    expect(of(req("10.0.0.6", "203.0.113.1"))).toBe("10.0.0.6"); // not a trusted proxy
  });

  it("stops at what is no address, and answers the last hop known when every hop is a proxy", () => {
    const of = clientAddressOf(["10.0.0.0/8"]);
    expect(of(req("10.0.0.5"))).toBe("10.0.0.5");
    expect(of(req("10.0.0.5", "203.0.113.1, unknown"))).toBe("10.0.0.5");
    expect(of(req("10.0.0.5", "garbage, 10.1.1.1"))).toBe("10.1.1.1");
    expect(of(req("10.0.0.5", "10.2.2.2, 10.1.1.1"))).toBe("10.2.2.2");
  });

  it("refuses an entry that is neither an address nor a CIDR subnet, naming it", () => {
    for (const bad of ["proxy.example.org", "10.0.0.0/33", "10.0.0.1/", "10.0.0.0/8/9", "::1/129", "10.0.0.0/x"]) {
      expect(() => clientAddressOf([bad])).toThrow(`trusted_proxies: '${bad}' is not an IP address or a CIDR subnet`);
    }
  });
});
