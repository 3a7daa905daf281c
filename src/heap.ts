/**
 * Keeps V8's young generation at its initial size (1 MiB per semi-space) instead of letting it grow to
 * 16 MiB per semi-space: an idle gateway then holds about 14 MiB less resident memory. Imported first by
 * cli.ts, so it takes effect before start-up allocates. The relayed bytes do not pass through the heap on the
 * splice path; the API's short-lived objects are scavenged a little more often (see bench/README.md).
 * `--semi-space-growth-factor` is read whenever the young generation would grow, so setting it here works;
 * NODE_OPTIONS=--max-semi-space-size=N still overrides this choice for whoever wants a larger one.
 */
import v8 from "node:v8";

if (!process.execArgv.some((a) => a.startsWith("--max-semi-space-size")) && !/--max-semi-space-size/.test(process.env.NODE_OPTIONS ?? "")) {
  v8.setFlagsFromString("--semi-space-growth-factor=1");
}
