/**
 * Loads settings from (in rising precedence) defaults, a config file, environment variables and flags,
 * and validates each against its definition so that an error names the setting and where it came from.
 */
import { readFileSync } from "node:fs";
import { parseYaml } from "./yaml.js";
import { SETTINGS, envName, type JsonValue, type SettingDef, type SettingValue } from "./settings.js";

export class ConfigError extends Error {}

export type FlatConfig = ReadonlyMap<string, SettingValue>;

/** Reads, merges and validates settings; `file` is the path given with `--config`, if any. */
export function loadSettings(
  file: string | undefined,
  env: NodeJS.ProcessEnv,
  flags: ReadonlyMap<string, string>,
): FlatConfig {
  const values = new Map<string, SettingValue>(SETTINGS.map((s) => [s.key, s.default]));
  if (file) {
    for (const [key, raw] of Object.entries(flattenFile(readConfigFile(file)))) {
      const setting = requireSetting(key, `config file ${file}`);
      values.set(key, coerce(setting, raw, `${key} in ${file}`));
    }
  }
  for (const setting of SETTINGS) {
    const raw = env[envName(setting.key)];
    if (raw !== undefined && raw !== "") values.set(setting.key, coerce(setting, raw, envName(setting.key)));
  }
  for (const [key, raw] of flags) {
    const setting = requireSetting(key, "the command line");
    values.set(key, coerce(setting, raw, `--${key}`));
  }
  return values;
}

function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  try {
    return parseYaml(text) ?? {};
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid YAML: ${(err as Error).message}`);
  }
}

/** Turns nested sections (`auth: {mode: users}`) into dotted keys (`auth.mode`). */
function flattenFile(doc: unknown, prefix = ""): Record<string, unknown> {
  if (!isPlainObject(doc)) throw new ConfigError(`config file must be a mapping of settings${prefix ? ` at ${prefix}` : ""}`);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(doc)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (isPlainObject(v) && !SETTINGS.some((s) => s.key === key)) Object.assign(out, flattenFile(v, key));
    else out[key] = v;
  }
  return out;
}

function requireSetting(key: string, where: string): SettingDef {
  const setting = SETTINGS.find((s) => s.key === key);
  if (!setting) {
    const near = SETTINGS.filter((s) => s.key.endsWith(key.split(".").pop() ?? key)).map((s) => s.key);
    const hint = near.length ? ` (did you mean ${near.join(", ")}?)` : "";
    throw new ConfigError(`unknown setting '${key}' in ${where}${hint}; see --help for the list`);
  }
  return setting;
}

/** Converts a raw value (string from env or flags, any JSON type from the file) to the setting's type. */
export function coerce(setting: SettingDef, raw: unknown, where: string): SettingValue {
  if (raw === null) return null;
  const fail = (what: string): never => {
    throw new ConfigError(`${where}: ${what}, got ${JSON.stringify(raw)}`);
  };
  switch (setting.type) {
    case "string":
      if (typeof raw === "string" || typeof raw === "number") return String(raw);
      return fail("expected a string");
    case "enum": {
      const value = String(raw);
      if (!setting.choices?.includes(value)) fail(`expected one of ${setting.choices?.join(", ")}`);
      return value;
    }
    case "bool":
      if (typeof raw === "boolean") return raw;
      if (typeof raw === "string" && /^(true|1|yes|on)$/i.test(raw)) return true;
      if (typeof raw === "string" && /^(false|0|no|off)$/i.test(raw)) return false;
      return fail("expected true or false");
    case "list":
      if (Array.isArray(raw) && raw.every((x) => typeof x === "string")) return raw as string[];
      if (typeof raw === "string") return raw.split(",").map((x) => x.trim()).filter(Boolean);
      return fail("expected a list of strings");
    case "json": {
      // The file gives a YAML value; env and flags give its JSON text.
      let value = raw;
      if (typeof raw === "string") {
        try {
          value = JSON.parse(raw);
        } catch (err) {
          return fail(`expected JSON (${(err as Error).message})`);
        }
      }
      if (!Array.isArray(value)) return fail("expected a list");
      return value as JsonValue[];
    }
    case "int":
    case "number": {
      const n = typeof raw === "number" ? raw : typeof raw === "string" && raw.trim() !== "" ? Number(raw) : NaN;
      if (!Number.isFinite(n)) fail("expected a number");
      if (setting.type === "int" && !Number.isInteger(n)) fail("expected a whole number");
      if (setting.min !== undefined && n < setting.min) fail(`must be at least ${setting.min}`);
      return n;
    }
  }
}

/** Parses `--key=value`, `--key value` and `-c FILE`; boolean flags may omit the value. */
export function parseArgs(argv: readonly string[]): { command: string | undefined; config: string | undefined; flags: Map<string, string>; rest: string[] } {
  const flags = new Map<string, string>();
  const rest: string[] = [];
  let config: string | undefined;
  let command: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "-c" || arg === "--config") {
      config = argv[++i];
      if (!config) throw new ConfigError(`${arg} needs a file name`);
    } else if (arg.startsWith("--config=")) {
      config = arg.slice("--config=".length);
    } else if (arg.startsWith("--") && arg.length > 2) {
      const eq = arg.indexOf("=");
      const key = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
      const setting = SETTINGS.find((s) => s.key === key);
      if (eq > 0) flags.set(key, arg.slice(eq + 1));
      else if (setting?.type === "bool" && (argv[i + 1] === undefined || argv[i + 1]!.startsWith("--"))) flags.set(key, "true");
      else if (setting || !["help", "version"].includes(key)) {
        const value = argv[++i];
        if (value === undefined) throw new ConfigError(`--${key} needs a value`);
        flags.set(key, value);
      } else rest.push(arg);
    } else if (command === undefined && !arg.startsWith("-")) {
      command = arg;
    } else {
      rest.push(arg);
    }
  }
  return { command, config, flags, rest };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
