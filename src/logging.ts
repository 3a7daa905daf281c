/**
 * The gateway's logger: one JSON line per event, or human-readable lines on a terminal.
 * Secret-bearing fields are redacted by name as a second line of defence; code never logs secrets on purpose.
 */
import { pino, type Logger } from "pino";
import type pinoPretty from "pino-pretty";
import { loadPackage } from "./lazy.js";

export type { Logger };

const REDACT = [
  "password", "token", "tls_key", "tlsKey", "key", "authorization", "cookie",
  "*.password", "*.token", "*.tls_key", "*.tlsKey", "*.authorization", "*.cookie",
  "req.headers.authorization", "req.headers.cookie",
];

/** Creates the root logger; `format` auto means pretty when stderr is a terminal. */
export function createLogger(level: string, format: "auto" | "json" | "pretty" = "auto"): Logger {
  const options = { level, redact: { paths: REDACT, censor: "[redacted]" }, base: { service: "dask-gateway" } };
  const usePretty = format === "pretty" || (format === "auto" && process.stderr.isTTY === true);
  // Loaded only when used: a gateway logging JSON (a service, a container) does not hold it.
  const pretty = usePretty ? loadPackage<typeof pinoPretty>("pino-pretty") : undefined;
  if (pretty) return pino(options, pretty({ destination: 2, colorize: true, sync: true, ignore: "pid,hostname,service" }));
  return pino(options, pino.destination({ dest: 2, sync: false }));
}
