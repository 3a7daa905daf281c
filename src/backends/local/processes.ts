/**
 * Child processes in their own process groups, with the reference's escalating stop
 * (SIGINT, then SIGTERM, then SIGKILL) and a record of how each one ended.
 */
import { spawn } from "node:child_process";
import { getPriority, setPriority } from "node:os";
import { openSync, closeSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** pid → how it ended, for processes this gateway started. */
const exits = new Map<number, ExitInfo>();
/** pid → working directory and command line, for running processes this gateway started. */
const live = new Map<number, { cwd: string; argv: string[] }>();

export interface SpawnOptions {
  command: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  logFile: string;
  /** Added to the gateway's niceness (capped at 19): the process and what it starts yield the CPU to the gateway. */
  niceness: number;
}

/** Starts a process in a new session with stdout and stderr appended to its log file; resolves with its pid. */
export function spawnLogged(options: SpawnOptions): Promise<number> {
  const fd = openSync(options.logFile, "a", 0o600);
  try {
    const child = spawn(options.command, options.args, {
      cwd: options.cwd,
      env: options.env,
      detached: true,
      stdio: ["ignore", fd, fd],
    });
    return new Promise((resolve, reject) => {
      child.once("error", reject);
      child.once("spawn", () => {
        const pid = child.pid!;
        live.set(pid, { cwd: options.cwd, argv: [options.command, ...options.args] });
        lowerPriority(pid, options.niceness);
        child.once("exit", (code, signal) => {
          live.delete(pid);
          exits.set(pid, { code, signal });
          // What it started dies with it, so childrenIn() knows every process of the directory. Only the
          // group is signalled: its id stays taken while any member lives, but the pid alone may be reused.
          try {
            process.kill(-pid, "SIGKILL");
          } catch {
            // The group is empty.
          }
        });
        child.removeListener("error", reject);
        child.on("error", () => undefined);
        resolve(pid);
      });
    });
  } finally {
    closeSync(fd);
  }
}

/** True while a process exists (whether or not this gateway started it). */
export function isAlive(pid: number): boolean {
  if (exits.has(pid)) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** How a process this gateway started ended, if it has. */
export function exitInfo(pid: number): ExitInfo | undefined {
  return exits.get(pid);
}

const STEPS: Array<[NodeJS.Signals, number]> = [["SIGINT", 10_000], ["SIGTERM", 5_000], ["SIGKILL", 5_000]];

/** Stops a process group: SIGINT, SIGTERM, SIGKILL, waiting for each; resolves true once it is gone. */
export async function stopProcess(pid: number, steps = STEPS): Promise<boolean> {
  for (const [signal, waitMs] of steps) {
    if (!isAlive(pid)) break;
    signalGroup(pid, signal);
    await waitUntil(() => !isAlive(pid), waitMs);
  }
  const gone = !isAlive(pid);
  if (gone) exits.delete(pid);
  return gone;
}

/**
 * Running processes whose working directory is `dir`, with their command lines (Linux /proc).
 * Finds what an earlier gateway started but did not live to record.
 */
export function processesIn(dir: string): Array<{ pid: number; argv: string[] }> {
  const found: Array<{ pid: number; argv: string[] }> = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cwd = readlinkSync(`/proc/${entry}/cwd`);
      if (cwd !== dir && cwd !== `${dir} (deleted)`) continue; // a removed directory reads "<dir> (deleted)"
      const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").filter(Boolean);
      found.push({ pid: Number(entry), argv });
    } catch {
      // Exited meanwhile, or not ours to inspect.
    }
  }
  return found;
}

/** Running processes this gateway started in `dir`, without scanning /proc. */
export function childrenIn(dir: string): Array<{ pid: number; argv: string[] }> {
  return [...live].filter(([, p]) => p.cwd === dir).map(([pid, p]) => ({ pid, argv: p.argv }));
}

/** Kills every process this gateway started and that is still running (used on exit). */
export function killAllSync(): void {
  for (const pid of live.keys()) signalGroup(pid, "SIGKILL");
}

/** Pids of running processes started by this gateway. */
export function livePids(): number[] {
  return [...live.keys()];
}

function lowerPriority(pid: number, niceness: number): void {
  if (niceness <= 0) return;
  const nice = Math.min(19, getPriority() + niceness);
  try {
    setPriority(pid, nice);
    // The child leads a new session, and with Linux's scheduler autogroups (on by default) each session
    // shares the CPU with the gateway's as an equal, whatever its processes' niceness: forty cluster processes
    // left the gateway a fortieth of the CPU. The session's own niceness fixes that.
    writeFileSync(`/proc/${pid}/autogroup`, String(nice));
  } catch {
    // Not permitted here, no autogroups (other kernels), or already exited: the priority stays as it is.
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}

async function waitUntil(done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}
