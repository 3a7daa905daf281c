/**
 * Which image a cluster runs: a name is qualified with the configured registry and pinned by digest when the
 * scheduler starts, so that every node, whenever it pulls, runs the same bits even when a tag moves.
 */
import { readFileSync } from "node:fs";
import type Docker from "dockerode";
import { BackendError } from "../backend.js";

/** Credentials as the engine takes them in X-Registry-Auth (what `docker login` keeps for a registry). */
export type RegistryAuth = Record<string, string>;

const REGISTRY_RE = /^[A-Za-z0-9.-]+(:[0-9]+)?(\/[a-z0-9._/-]+)?$/;

/** Checks `swarm.registry` (host[:port][/prefix]); returns it without a trailing slash. */
export function parseRegistry(value: string): string {
  const trimmed = value.replace(/\/+$/, "");
  if (!REGISTRY_RE.test(trimmed)) {
    throw new BackendError(`swarm.registry: expected host[:port][/prefix], got ${JSON.stringify(value)}`);
  }
  return trimmed;
}

/** A reference is pinned when it names a digest (`repo@sha256:...`). */
export function isPinned(ref: string): boolean {
  return /@sha256:[0-9a-f]{64}$/.test(ref);
}

/**
 * Docker's rule: the first path component is a registry host when it has a `.` or `:`, or is `localhost`.
 * A name without one refers to the configured registry (not Docker Hub: write `docker.io/...` for that).
 */
export function qualify(image: string, registry: string | null): string {
  const first = image.split("/", 1)[0]!;
  const hasHost = image.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost");
  return hasHost || !registry ? image : `${registry}/${image}`;
}

/** The reference a cluster's services use: qualified, and pinned by digest when a registry is configured. */
export async function resolveImage(docker: Docker, image: string, registry: string | null, auth: RegistryAuth | null): Promise<string> {
  const ref = qualify(image, registry);
  if (!registry || isPinned(ref)) return ref;
  let descriptor: { Descriptor?: { digest?: string } };
  try {
    descriptor = (await docker.getImage(ref).distribution(auth ? { authconfig: auth } : {})) as typeof descriptor;
  } catch (err) {
    throw new BackendError(`image ${ref} cannot be pulled from its registry: ${engineMessage(err)}`);
  }
  const digest = descriptor.Descriptor?.digest;
  if (!digest) throw new BackendError(`image ${ref}: the registry answered without a digest`);
  return `${ref.replace(/@.*$/, "")}@${digest}`;
}

/** Reads `swarm.registry_auth_file`; an empty object means no credentials. The values are never logged. */
export function readRegistryAuth(path: string | null): RegistryAuth | null {
  if (!path) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    // The message names the file, never its content.
    throw new BackendError(`swarm.registry_auth_file ${path}: ${err instanceof SyntaxError ? "not valid JSON" : (err as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed) || Object.values(parsed).some((v) => typeof v !== "string")) {
    throw new BackendError(`swarm.registry_auth_file ${path}: expected a JSON object of strings (username, password, serveraddress)`);
  }
  return Object.keys(parsed).length > 0 ? (parsed as RegistryAuth) : null;
}

/** Docker's own message from an engine error (its JSON body), else the error's message. */
function engineMessage(err: unknown): string {
  const e = err as { json?: { message?: string }; message?: string };
  return e.json?.message ?? e.message ?? String(err);
}
