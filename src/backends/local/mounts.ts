/**
 * What the allow-listed mounts mean for local processes, which share the gateway's file system and user:
 *
 * - a `volume` is the directory <state_dir>/volumes/<source>, made on first use and kept;
 * - a `user_volume` is <state_dir>/volumes/<source with {user} filled in>: one directory per user;
 * - a `bind` is the path itself, which must exist.
 *
 * No container maps them to their `target`: each process finds the path in the mount's variable (`env`, default
 * DASK_GATEWAY_MOUNT_<NAME>), which on Swarm holds the target, so code that reads the variable runs on both.
 * `read_only` cannot be enforced for processes that run as the gateway's own user.
 */
import { mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { mountEnvName, mountsFor, type MountDefinition, type MountRole } from "../../options/mounts.js";
import { BackendError, type SchedulerLaunch } from "../backend.js";

/** The local path of a mount (`{user}` already filled in). */
function localPath(mount: MountDefinition, volumesDir: string): string {
  return mount.type === "bind" ? mount.source : join(volumesDir, mount.source);
}

/** Makes the volume directories of a scheduler or worker and checks its bind paths; a missing one fails the start, naming it. */
export async function prepareMounts(launch: SchedulerLaunch, volumesDir: string, role: MountRole): Promise<void> {
  for (const def of mountsFor(launch.mounts, launch.user, role)) {
    const path = localPath(def, volumesDir);
    if (def.type !== "bind") {
      await mkdir(path, { recursive: true, mode: 0o700 });
      continue;
    }
    const found = await stat(path).catch(() => null);
    if (!found?.isDirectory() && !found?.isFile()) throw new BackendError(`mount '${def.name}': the path ${path} does not exist on this machine`);
  }
}

/** The variables that tell a scheduler (mounts of workers only left out) or a worker where its mounts are. */
export function localMountEnv(launch: SchedulerLaunch, volumesDir: string, role: MountRole): Record<string, string> {
  return Object.fromEntries(mountsFor(launch.mounts, launch.user, role).map((m) => [mountEnvName(m), localPath(m, volumesDir)]));
}
