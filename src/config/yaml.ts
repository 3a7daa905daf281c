/**
 * YAML parsing, with the `yaml` package loaded at the first file that needs it: a gateway configured by flags
 * and environment alone never holds it (memory; see bench/README.md).
 */
import { loadPackage } from "../lazy.js";

let parse: typeof import("yaml").parse | undefined;

/** Parses YAML text (JSON is YAML too), as `yaml`'s parse does. */
export function parseYaml(text: string): unknown {
  parse ??= loadPackage<typeof import("yaml")>("yaml").parse;
  return parse(text);
}
