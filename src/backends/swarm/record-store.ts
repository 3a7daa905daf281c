/**
 * Cluster records kept in the swarm itself, as Docker configs, so that a gateway moved to another manager
 * (its state volume left behind) re-adopts every cluster. Configs are replicated by the managers' Raft log
 * but readable by anyone with the Docker API, and records hold each cluster's TLS key and token: each one is
 * encrypted (AES-256-GCM, bound to its cluster's name) with a key from a Docker secret only the gateway mounts.
 * Configs cannot change, so a new version is a new config (a sequence label orders them) and the old one goes.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";
import type Docker from "dockerode";
import { parseRecord, serializeRecord, type ClusterStore, type LoadedRecords } from "../../clusters/store.js";
import type { ClusterRecord } from "../../clusters/model.js";
import { LABEL } from "./docker-objects.js";

/** Labels of a record's config: the cluster's name is not `LABEL.cluster`, so cluster cleanups leave it be. */
export const RECORD_LABEL = { of: "dask-gateway.record-of", seq: "dask-gateway.record-seq" } as const;
const FORMAT = "dgw-record-v1";

/** The 32-byte encryption key of a gateway's records, from the secret's text (any length). */
export function recordsKey(secret: string, gatewayId: string): Buffer {
  if (secret.trim().length < 16) throw new Error("the records key must be at least 16 characters");
  return Buffer.from(hkdfSync("sha256", secret.trim(), "dask-gateway-swarm records", gatewayId, 32));
}

/** Encrypts a record's text; the cluster's name is authenticated too, so records cannot be swapped. */
export function sealRecord(key: Buffer, name: string, text: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv).setAAD(Buffer.from(name));
  const data = Buffer.concat([cipher.update(text, "utf8"), cipher.final()]);
  return JSON.stringify({ format: FORMAT, iv: iv.toString("base64"), tag: cipher.getAuthTag().toString("base64"), data: data.toString("base64") });
}

/** The text of a sealed record; throws when the key or the name does not match, or the data was altered. */
export function openRecord(key: Buffer, name: string, sealed: string): string {
  const box = JSON.parse(sealed) as { format?: string; iv: string; tag: string; data: string };
  if (box.format !== FORMAT) throw new Error(`unknown record format ${String(box.format)}`);
  const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(box.iv, "base64")).setAAD(Buffer.from(name));
  decipher.setAuthTag(Buffer.from(box.tag, "base64"));
  try {
    return Buffer.concat([decipher.update(Buffer.from(box.data, "base64")), decipher.final()]).toString("utf8");
  } catch {
    throw new Error("it cannot be decrypted with this gateway's records key (swarm.records_key_file)");
  }
}

interface Version {
  id: string;
  seq: number;
  text: string;
}

/** A store of sealed records in Docker configs labelled with the gateway's identity. */
export function swarmRecordStore(docker: Docker, gatewayId: string, key: Buffer, onBadRecord: (name: string, err: Error) => void): ClusterStore {
  const latest = new Map<string, Version>();
  /** Per cluster, the write under way: writes of one cluster run one after another, the newest state each time. */
  const writing = new Map<string, Promise<void>>();
  let lastSeq = 0;

  const ours = (name?: string) => ({ label: [`${LABEL.gateway}=${gatewayId}`, name ? `${RECORD_LABEL.of}=${name}` : RECORD_LABEL.of] });
  const removeConfig = (id: string) => docker.getConfig(id).remove().catch((err: { statusCode?: number }) => {
    if (err.statusCode !== 404) throw err;
  });

  async function write(cluster: ClusterRecord): Promise<void> {
    const name = cluster.name;
    const text = serializeRecord(cluster); // taken now, so queued saves collapse into one write
    const previous = latest.get(name);
    if (previous?.text === text) return;
    const seq = (lastSeq = Math.max(Date.now() * 1000, lastSeq + 1));
    const created = await docker.createConfig({
      Name: `dgw-record-${name}-${seq}`,
      Labels: { [LABEL.gateway]: gatewayId, [RECORD_LABEL.of]: name, [RECORD_LABEL.seq]: String(seq) },
      Data: Buffer.from(sealRecord(key, name, text)).toString("base64"),
    });
    latest.set(name, { id: (created as { id: string }).id, seq, text });
    if (previous) await removeConfig(previous.id);
  }

  function serially(name: string, job: () => Promise<void>): Promise<void> {
    const next = (writing.get(name) ?? Promise.resolve()).catch(() => undefined).then(job);
    writing.set(name, next);
    const clear = () => {
      if (writing.get(name) === next) writing.delete(name);
    };
    next.then(clear, clear);
    return next;
  }

  return {
    save(cluster) {
      return serially(cluster.name, () => write(cluster));
    },
    remove(name) {
      return serially(name, async () => {
        const configs = await docker.listConfigs({ filters: ours(name) });
        await Promise.all(configs.map((c) => removeConfig(c.ID)));
        latest.delete(name);
      });
    },
    async load() {
      const configs = (await docker.listConfigs({ filters: ours() })) as Array<{ ID: string; Spec?: { Labels?: Record<string, string>; Data?: string } }>;
      const newest = new Map<string, { id: string; seq: number; data: string }>();
      const stale: string[] = [];
      for (const c of configs) {
        const name = c.Spec?.Labels?.[RECORD_LABEL.of];
        const seq = Number(c.Spec?.Labels?.[RECORD_LABEL.seq]);
        if (!name || !Number.isFinite(seq)) continue;
        const best = newest.get(name);
        if (best && best.seq > seq) {
          stale.push(c.ID);
          continue;
        }
        if (best) stale.push(best.id);
        newest.set(name, { id: c.ID, seq, data: c.Spec?.Data ?? "" });
      }
      // Versions a gateway died before removing.
      await Promise.all(stale.map(removeConfig));
      const loaded: LoadedRecords = { records: [], unreadable: [] };
      for (const [name, { id, seq, data }] of newest) {
        try {
          const text = openRecord(key, name, Buffer.from(data, "base64").toString("utf8"));
          loaded.records.push(parseRecord(text));
          latest.set(name, { id, seq, text });
          lastSeq = Math.max(lastSeq, seq);
        } catch (err) {
          onBadRecord(name, err as Error);
          loaded.unreadable.push(name);
        }
      }
      return loaded;
    },
  };
}
