/**
 * Who the client is, for the sign-in throttle: the connection's peer, unless that peer is one of the operator's
 * reverse proxies (`trusted_proxies`). Then X-Forwarded-For is read from the right, skipping trusted proxies,
 * and the first address that is not one is the client. Entries left of it were written by the client itself and
 * are never believed, so a client cannot pick the address it is counted under.
 */
import type { IncomingMessage } from "node:http";
import { BlockList, isIP } from "node:net";

/** The client's address of a request (an empty string when the connection has no peer address). */
export type ClientAddress = (req: IncomingMessage) => string;

/** Parses `trusted_proxies` (addresses or CIDR subnets); throws naming the first bad entry. */
export function clientAddressOf(trusted: readonly string[]): ClientAddress {
  const peer = (req: IncomingMessage) => plain(req.socket.remoteAddress ?? "");
  if (trusted.length === 0) return peer;
  const proxies = new BlockList();
  for (const entry of trusted) addEntry(proxies, entry);
  const isProxy = (address: string) => {
    const family = isIP(address);
    return family !== 0 && proxies.check(address, family === 6 ? "ipv6" : "ipv4");
  };
  return (req) => {
    let client = peer(req);
    if (!isProxy(client)) return client;
    const forwarded = [req.headers["x-forwarded-for"] ?? []].flat().join(",").split(",").map((a) => plain(a.trim()));
    for (let i = forwarded.length - 1; i >= 0; i--) {
      const hop = forwarded[i]!;
      // A hop that is no address ends the walk: the last proxy that forwarded it is all that is known.
      if (isIP(hop) === 0) return client;
      client = hop;
      if (!isProxy(hop)) return hop;
    }
    return client;
  };
}

function addEntry(list: BlockList, entry: string): void {
  const [address, bits, extra] = entry.split("/");
  const family = isIP(address ?? "");
  const prefix = bits === undefined ? undefined : Number(bits);
  const max = family === 6 ? 128 : 32;
  if (family === 0 || extra !== undefined || (prefix !== undefined && !(Number.isInteger(prefix) && prefix >= 0 && prefix <= max && bits !== ""))) {
    throw new Error(`trusted_proxies: '${entry}' is not an IP address or a CIDR subnet (e.g. 10.0.0.5 or 10.0.0.0/24)`);
  }
  const type = family === 6 ? "ipv6" : "ipv4";
  if (prefix === undefined) list.addAddress(address!, type);
  else list.addSubnet(address!, prefix, type);
}

/** An IPv4 address as itself when a dual-stack socket reports it IPv4-mapped (::ffff:10.0.0.5). */
function plain(address: string): string {
  return address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}
