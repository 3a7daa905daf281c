/**
 * Two scheduler preloads that make a cluster's software stack (its image, or Python environment) visible:
 *
 * - the stack check, the first preload: before dask-gateway's own preload is imported, it checks that dask,
 *   distributed and dask-gateway are there and recent enough, and otherwise ends the scheduler at once with an exit
 *   code that says which (decoded by `stackExitReason`), so a wrong image fails the start in seconds with a reason
 *   instead of a traceback in a log and a start timeout;
 * - the versions route, after dask-gateway's preload: `GET /api/versions` with the cluster token answers the
 *   scheduler's Python, dask, distributed and dask-gateway versions, which the gateway records as an event when the
 *   cluster runs (a version mismatch between client and cluster is the most common support question).
 *
 * Both are passed as source text (as backends/pool-preload.ts), so an image needs no file of the project's.
 */

/** The route the gateway reads versions from (clusters/scheduler-api.ts). */
export const VERSIONS_ROUTE = "/api/versions";

/**
 * The oldest versions the gateway's preloads work with: those dask-gateway 2026.3 itself requires (its scheduler
 * preload's internals, which the pool's claim uses, have been stable since).
 */
export const MINIMUM_VERSIONS = { dask: "2022.4.0", distributed: "2022.4.0", "dask-gateway": "2022.4.0" } as const;
const PACKAGES = Object.keys(MINIMUM_VERSIONS) as Array<keyof typeof MINIMUM_VERSIONS>;

/** Exit codes of the check: 64 + a bit per missing package + 8 x a bit per package too old. */
const EXIT_BASE = 64;

export const STACK_CHECK_PRELOAD = `# dask-gateway-swarm: checks the stack before dask-gateway's preload
import os, sys, re, platform
from importlib import metadata
need = ${JSON.stringify(MINIMUM_VERSIONS)}
def vers(p):
    try: return metadata.version(p)
    except Exception: return None
def key(v): return tuple(int(x) for x in re.findall(r"\\d+", v)[:3])
found = {p: vers(p) for p in need}
code = sum(1 << i for i, p in enumerate(need) if found[p] is None)
code += sum(8 << i for i, p in enumerate(need) if found[p] and key(found[p]) < key(need[p]))
print("stack: python " + platform.python_version() + "".join(", %s %s" % (p, v) for p, v in found.items() if v), file=sys.stderr, flush=True)
if code:
    print("stack: this environment cannot run a dask-gateway scheduler (needs %s)" % need, file=sys.stderr, flush=True)
    os._exit(${EXIT_BASE} + code)
`;

export const VERSIONS_PRELOAD = `# dask-gateway-swarm: GET ${VERSIONS_ROUTE} answers the stack's versions
import platform
from importlib import metadata
from dask_gateway.scheduler_preload import BaseHandler
from tornado import web
class Versions(BaseHandler):
    @web.authenticated
    def get(self):
        out = {"python": platform.python_version()}
        for p in ("dask", "distributed", "dask-gateway"):
            try: out[p] = metadata.version(p)
            except Exception: pass
        self.write(out)
def dask_setup(scheduler):
    scheduler.services["gateway"].app.wildcard_router.add_rules([("${VERSIONS_ROUTE}", Versions)])
`;

/** The scheduler's preloads in order, with the pool's claim preload (when warm) among them. */
export function schedulerPreloadArgs(claimArgs: string[]): string[] {
  return ["--preload", STACK_CHECK_PRELOAD, "--preload", "dask_gateway.scheduler_preload", ...claimArgs, "--preload", VERSIONS_PRELOAD];
}

/** What an init process (the containers' tini) exits with when it cannot find the command. */
const COMMAND_NOT_FOUND = 127;

/** Why a scheduler that exited with `code` cannot run in its stack, or null when the code is not the check's. */
export function stackExitReason(code: number, stack: string): string | null {
  if (code === COMMAND_NOT_FOUND) return noDask(stack, `exit code ${code}: command not found`);
  if (code <= EXIT_BASE || code >= EXIT_BASE + 64) return null;
  const bits = code - EXIT_BASE;
  const missing = PACKAGES.filter((_, i) => bits & (1 << i));
  const old = PACKAGES.filter((_, i) => bits & (8 << i));
  if (missing.some((p) => old.includes(p))) return null; // not a code the check makes
  const parts = [
    ...(missing.length ? [`it lacks ${missing.join(", ")}`] : []),
    ...(old.length ? [`its ${old.join(", ")} ${old.length === 1 ? "is" : "are"} older than ${old.map((p) => `${p} ${MINIMUM_VERSIONS[p]}`).join(", ")}`] : []),
  ];
  return `${stack} cannot run a dask-gateway scheduler: ${parts.join(", and ")}; a cluster's image needs dask, distributed and dask-gateway (the scheduler's log lists the versions found)`;
}

/** Why a stack could not even start `dask` (the engine's or the system's error), or null for other errors. */
export function missingDaskReason(error: string, stack: string): string | null {
  return /executable file not found|no such file or directory|ENOENT/i.test(error) && /dask/.test(error) ? noDask(stack, error) : null;
}

function noDask(stack: string, detail: string): string {
  return `${stack} has no 'dask' command: a cluster's image needs dask, distributed and dask-gateway (${detail})`;
}
