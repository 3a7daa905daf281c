#!/usr/bin/env node
/**
 * Command line: `serve` (the default) runs the gateway; `init-config` writes a commented default
 * config file; `hash-password` makes a users-file hash; `--help` lists every setting.
 */
import { allowYoungGenerationGrowth } from "./heap.js"; // first: before start-up allocates
import { existsSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { hashPassword } from "./auth/passwords.js";
import { resolveConfig } from "./config/config.js";
import { ConfigError, loadSettings, parseArgs } from "./config/load.js";
import { SETTINGS, envName, settingDef } from "./config/settings.js";
import type { RunningGateway } from "./gateway.js";
import { createLogger } from "./logging.js";
import { VERSION } from "./version.js";

const USAGE = `dask-gateway-swarm ${VERSION}: a Dask Gateway server for Docker Swarm and local processes

Usage:
  dask-gateway-swarm [serve] [-c FILE] [--<setting> VALUE ...]
  dask-gateway-swarm init-config [--output FILE] [--force]
  dask-gateway-swarm hash-password            (reads the password from standard input)
  dask-gateway-swarm --help | --version

Every setting can come from the config file (-c), an environment variable or a flag;
flags win over the environment, which wins over the file.`;

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  if (args.rest.includes("--help") || args.rest.includes("-h")) return print(help());
  if (args.rest.includes("--version")) return print(VERSION);
  switch (args.command ?? "serve") {
    case "serve":
      return serve(args.config, args.flags);
    case "init-config":
      return initConfig(args.flags.get("output") ?? "dask-gateway.yaml", args.rest.includes("--force") || args.flags.has("force"));
    case "hash-password":
      return print(await hashPassword(await readLine()));
    default:
      throw new ConfigError(`unknown command '${args.command}'; see --help`);
  }
}

async function serve(configFile: string | undefined, flags: Map<string, string>): Promise<number> {
  const config = resolveConfig(loadSettings(configFile, process.env, flags));
  const log = createLogger(config.log.level, config.log.format);
  for (const key of flags.keys()) {
    if (settingDef(key).secret) log.warn({ setting: key }, `--${key} is visible to every local user in ps; prefer ${envName(key)} or a file`);
  }
  // Loaded here, not at the top: the server's modules are parsed after heap.js has set the young generation's size.
  const { startGateway } = await import("./gateway.js");
  const gateway = await startGateway(config, log);
  allowYoungGenerationGrowth();
  process.stdout.write(banner(gateway));
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, "shutting down");
      process.removeAllListeners("SIGINT");
      process.removeAllListeners("SIGTERM");
      void gateway.close().then(resolve);
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return 0;
}

/** What a new user needs: where to connect, with which credentials, and a snippet that does it. */
function banner(gw: RunningGateway): string {
  const user = safeUserName();
  const pw = gw.password;
  const shown = pw && (pw.source === "generated" || pw.source === "state") ? pw.password : null;
  const lines = [
    "",
    `Dask Gateway ${VERSION} is running at ${gw.url}`,
    pw ? `  user:     (any name) e.g. ${user}; each user sees only their own clusters` : "  users:    from auth.users_file",
    pw ? `  password: ${shown ?? `(from ${pw.source === "file" ? "auth.password_file" : "the auth.password setting"})`}` : "",
    "",
    "Connect from Python:",
    "  from dask_gateway import Gateway, BasicAuth",
    `  gateway = Gateway("${gw.url}", auth=BasicAuth("${user}", ${shown ? JSON.stringify(shown) : "PASSWORD"}))`,
    "  cluster = gateway.new_cluster(); cluster.scale(2); client = cluster.get_client()",
    "",
  ];
  return lines.filter((l, i) => l !== "" || lines[i - 1] !== "").join("\n") + "\n";
}

function help(): string {
  const rows = SETTINGS.map((s) => {
    const shown = s.type === "json" ? JSON.stringify(s.default) : Array.isArray(s.default) ? s.default.join(",") || "none" : s.default;
    const dflt = s.default === null ? "" : ` (default: ${shown})`;
    const choices = s.choices ? ` [${s.choices.join("|")}]` : "";
    return `  --${s.key}${choices}  ${envName(s.key)}\n      ${s.help}${dflt}`;
  });
  return `${USAGE}\n\nSettings:\n${rows.join("\n")}`;
}

function initConfig(output: string, force: boolean): number {
  if (existsSync(output) && !force) throw new ConfigError(`${output} exists; use --force to overwrite it`);
  const lines = ["# dask-gateway-swarm configuration. Every setting is shown with its default, commented out.", ""];
  let section = "";
  for (const s of SETTINGS) {
    const [head, tail] = s.key.includes(".") ? s.key.split(".") : ["", s.key];
    if (head !== section) {
      lines.push("", head ? `${head}:` : "");
      section = head!;
    }
    const indent = head ? "  " : "";
    lines.push(`${indent}# ${s.help} (env ${envName(s.key)})`);
    lines.push(`${indent}# ${tail}: ${s.default === null ? "" : JSON.stringify(s.default)}`);
  }
  writeFileSync(output, lines.join("\n").replace(/\n{3,}/g, "\n\n") + "\n", { mode: 0o600 });
  return print(`wrote ${output}`);
}

/** The first line of standard input (a pipe or a terminal). */
async function readLine(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
    if (chunk.includes(10)) break;
  }
  const line = Buffer.concat(chunks).toString("utf8").split(/\r?\n/)[0] ?? "";
  if (!line) throw new ConfigError("hash-password: no password on standard input");
  return line;
}

function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return "me";
  }
}

function print(text: string): number {
  process.stdout.write(text + "\n");
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const detail = process.env.DGW_DEBUG ? ((err as Error).stack ?? String(err)) : (err as Error).message;
    const message = err instanceof ConfigError ? `configuration error: ${detail}` : `error: ${detail}`;
    process.stderr.write(message + "\n");
    process.exit(err instanceof ConfigError ? 2 : 1);
  },
);
