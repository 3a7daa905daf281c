/**
 * Cluster records on disk (one JSON file per cluster, mode 0600, written atomically), so that a gateway
 * restarted after a crash, an upgrade or a move finds every cluster again instead of orphaning it.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ClusterRecord, WorkerRecord } from "./model.js";

type StoredWorker = Omit<WorkerRecord, never>;
type StoredCluster = Omit<ClusterRecord, "workers" | "events" | "clients"> & { workers: StoredWorker[] };

export interface ClusterStore {
  save(cluster: ClusterRecord): void;
  remove(name: string): void;
  load(): ClusterRecord[];
}

/** A store in a directory; unreadable files are reported and skipped, never fatal. */
export function fileStore(dir: string, onBadFile: (file: string, err: Error) => void): ClusterStore {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = (name: string) => join(dir, `${name}.json`);
  const written = new Map<string, string>(); // what each file holds: most reconciles change nothing
  return {
    save(cluster) {
      const { workers, events: _events, clients: _clients, ...rest } = cluster;
      const stored: StoredCluster = { ...rest, workers: [...workers.values()] };
      const text = JSON.stringify(stored);
      if (written.get(cluster.name) === text) return;
      const tmp = `${path(cluster.name)}.tmp`;
      writeFileSync(tmp, text, { mode: 0o600 });
      renameSync(tmp, path(cluster.name));
      written.set(cluster.name, text);
    },
    remove(name) {
      rmSync(path(name), { force: true });
      written.delete(name);
    },
    load() {
      const out: ClusterRecord[] = [];
      for (const file of readdirSync(dir).filter((f) => f.endsWith(".json"))) {
        try {
          const stored = JSON.parse(readFileSync(join(dir, file), "utf8")) as StoredCluster;
          out.push({ ...stored, events: [], clients: 0, workers: new Map(stored.workers.map((w) => [w.name, w])) });
        } catch (err) {
          onBadFile(file, err as Error);
        }
      }
      return out;
    },
  };
}

/** A store that keeps nothing (tests of the manager alone). */
export const memoryStore: ClusterStore = { save() {}, remove() {}, load: () => [] };
