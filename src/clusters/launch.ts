/**
 * What the backend is told about a cluster's scheduler: its identity, the configuration the options made, and the
 * gateway's own settings. One pure function, shared by starts, stops, worker launches and the pool's key.
 */
import type { SchedulerLaunch } from "../backends/backend.js";
import { schedulerNeedsUser } from "../options/mounts.js";
import type { ClusterConfig, ClusterRecord } from "./model.js";

/** The gateway settings every launch carries. */
export interface LaunchSettings {
  apiUrl: string;
  heartbeatPeriod: number;
  adaptivePeriod: number;
}

export type LaunchIdentity = Pick<ClusterRecord, "name" | "user" | "token" | "tlsCert" | "tlsKey">;

/** A warm scheduler starts with idle timeout 0: the claim arms the user's (backends/pool-preload.ts). */
export function schedulerLaunch(identity: LaunchIdentity, config: ClusterConfig, warm: boolean, settings: LaunchSettings): SchedulerLaunch {
  const mounts = config.mounts ?? [];
  return {
    name: identity.name, user: identity.user, token: identity.token, tlsCert: identity.tlsCert, tlsKey: identity.tlsKey,
    apiUrl: settings.apiUrl, heartbeatPeriod: settings.heartbeatPeriod,
    adaptivePeriod: settings.adaptivePeriod, idleTimeout: warm ? 0 : config.idleTimeout,
    schedulerCores: config.schedulerCores, schedulerMemoryBytes: config.schedulerMemoryBytes,
    environment: config.environment, image: config.image, ...(warm ? { warm } : {}),
    mounts, workerResources: config.workerResources ?? {},
    ...(schedulerNeedsUser(mounts) ? { mountsUser: identity.user } : {}),
  };
}

/** The text of a cluster's `versions` event. */
export function describeVersions(versions: Record<string, string>): string {
  return Object.entries(versions).map(([pkg, v]) => `${pkg} ${v}`).join(", ");
}
