/**
 * Cluster records that outlive the gateway process, so that a gateway restarted after a crash, an upgrade
 * or a move finds every cluster again instead of orphaning it. Two places keep them: a directory (one JSON
 * file per cluster, mode 0600, written atomically) and the swarm itself (backends/swarm/record-store.ts).
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ClusterRecord, WorkerRecord } from "./model.js";

/** What lives only while the gateway runs (events, client counts, liveness clocks that adoption restarts) is left out. */
type StoredCluster = Omit<ClusterRecord, "workers" | "events" | "clients" | "lastHeartbeat" | "lastClientSeen"> & { workers: WorkerRecord[] };

export interface LoadedRecords {
  records: ClusterRecord[];
  /** Clusters whose record exists but cannot be read: they are neither adopted nor cleaned up. */
  unreadable: string[];
}

export interface ClusterStore {
  /** Keeps the cluster's current record; resolves once it (or a newer one) is stored. */
  save(cluster: ClusterRecord): Promise<void>;
  remove(name: string): Promise<void>;
  load(): Promise<LoadedRecords>;
}

/** The stored text of a record; it changes only when something worth keeping does. */
export function serializeRecord(cluster: ClusterRecord): string {
  const { workers, events: _events, clients: _clients, lastHeartbeat: _heartbeat, lastClientSeen: _seen, ...rest } = cluster;
  const stored: StoredCluster = { ...rest, workers: [...workers.values()] };
  return JSON.stringify(stored);
}

/** The record of a stored text; throws for text that is not a record. */
export function parseRecord(text: string): ClusterRecord {
  const stored = JSON.parse(text) as StoredCluster;
  if (typeof stored?.name !== "string" || !Array.isArray(stored.workers)) throw new Error("not a cluster record");
  const now = Date.now(); // the liveness clocks start again when a record is adopted
  return { ...stored, events: [], clients: 0, lastHeartbeat: now, lastClientSeen: now, workers: new Map(stored.workers.map((w) => [w.name, w])) };
}

/** A store in a directory; unreadable files are reported, and their clusters left alone. */
export function fileStore(dir: string, onBadRecord: (name: string, err: Error) => void): ClusterStore {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = (name: string) => join(dir, `${name}.json`);
  const written = new Map<string, string>(); // what each file holds: most reconciles change nothing
  return {
    async save(cluster) {
      const text = serializeRecord(cluster);
      if (written.get(cluster.name) === text) return;
      const tmp = `${path(cluster.name)}.tmp`;
      writeFileSync(tmp, text, { mode: 0o600 });
      renameSync(tmp, path(cluster.name));
      written.set(cluster.name, text);
    },
    async remove(name) {
      rmSync(path(name), { force: true });
      written.delete(name);
    },
    async load() {
      const loaded: LoadedRecords = { records: [], unreadable: [] };
      for (const file of readdirSync(dir).filter((f) => f.endsWith(".json"))) {
        const name = file.slice(0, -".json".length);
        try {
          loaded.records.push(parseRecord(readFileSync(join(dir, file), "utf8")));
        } catch (err) {
          onBadRecord(name, err as Error);
          loaded.unreadable.push(name);
        }
      }
      return loaded;
    },
  };
}

/** A store that keeps nothing (tests of the manager alone). */
export const memoryStore: ClusterStore = {
  save: async () => {},
  remove: async () => {},
  load: async () => ({ records: [], unreadable: [] }),
};

/** `to`, after moving into it the records still kept by `from` (a gateway that changes where it keeps them). */
export function migratingStore(to: ClusterStore, from: ClusterStore): ClusterStore {
  return {
    save: (cluster) => to.save(cluster),
    remove: (name) => to.remove(name),
    async load() {
      const old = await from.load();
      for (const record of old.records) {
        await to.save(record);
        await from.remove(record.name);
      }
      const loaded = await to.load();
      return { records: loaded.records, unreadable: [...loaded.unreadable, ...old.unreadable] };
    },
  };
}
