/**
 * Logs of swarm clusters: the engine's service logs (`docker service logs --timestamps`), read as a stream
 * and decoded here. Services without a TTY answer in Docker's multiplexed framing: an 8-byte header (stream
 * 1 stdout or 2 stderr, three zero bytes, the payload size as a big-endian uint32) before each payload; each
 * line of a payload starts with the engine's RFC 3339 nanosecond time. The decoder keeps at most one frame
 * and one unfinished line per stream, so a follower that reads slowly slows the engine's socket instead.
 */
import { Transform, type TransformCallback, type Readable } from "node:stream";
import type Docker from "dockerode";
import type { LogQuery, NodeInfo } from "../backend.js";
import { LineSplitter, formatLine, MAX_LINE_BYTES } from "../../logs/lines.js";
import { LABEL } from "./docker-objects.js";
import type { SwarmNode } from "./placement.js";

const HEADER_BYTES = 8;
/** A frame larger than this is not Docker's framing (the engine splits log lines at 16 KiB). */
const MAX_FRAME_BYTES = 1024 * 1024;
const ENGINE_TIME = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) ?/;

/** Decodes Docker's log stream (framed, or raw for a TTY) into the gateway's timestamped lines. */
export class DockerLogDecoder extends Transform {
  private pending: Buffer = Buffer.alloc(0);
  /** null until the first bytes say whether the stream is framed. */
  private framed: boolean | null = null;
  private readonly splitters = new Map<number, LineSplitter>();
  private lastTime = Date.now();

  constructor() {
    super({ readableHighWaterMark: 64 * 1024 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    if (this.framed === null && this.pending.length >= HEADER_BYTES) this.framed = looksFramed(this.pending);
    if (this.framed === false) {
      this.emitLines(this.splitter(1).push(this.pending));
      this.pending = Buffer.alloc(0);
      return done();
    }
    while (this.framed && this.pending.length >= HEADER_BYTES) {
      const size = this.pending.readUInt32BE(4);
      if (size > MAX_FRAME_BYTES) return done(new Error(`not a Docker log stream: a frame of ${size} bytes`));
      if (this.pending.length < HEADER_BYTES + size) break;
      this.emitLines(this.splitter(this.pending[0]!).push(this.pending.subarray(HEADER_BYTES, HEADER_BYTES + size)));
      this.pending = this.pending.subarray(HEADER_BYTES + size);
    }
    this.pending = Buffer.from(this.pending); // a copy: the engine's chunk is not held
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.framed === null && this.pending.length) this.emitLines(this.splitter(1).push(this.pending));
    for (const splitter of this.splitters.values()) this.emitLines(splitter.flush());
    done();
  }

  private splitter(stream: number): LineSplitter {
    let splitter = this.splitters.get(stream);
    if (!splitter) this.splitters.set(stream, (splitter = new LineSplitter()));
    return splitter;
  }

  private emitLines(lines: string[]): void {
    let out = "";
    for (const line of lines) {
      const m = ENGINE_TIME.exec(line);
      const time = m ? Date.parse(m[1]!) : NaN;
      if (!Number.isNaN(time)) this.lastTime = time;
      out += formatLine(this.lastTime, m ? line.slice(m[0].length) : line);
    }
    if (out) this.push(out);
  }
}

/** Framed streams start with a stream byte of 0, 1 or 2, three zero bytes and a plausible size. */
function looksFramed(head: Buffer): boolean {
  return head[0]! <= 2 && head[1] === 0 && head[2] === 0 && head[3] === 0 && head.readUInt32BE(4) <= Math.max(MAX_FRAME_BYTES, MAX_LINE_BYTES);
}

/** The engine's log query for a service, as `docker service logs --timestamps [--tail N] [--since T] [-f]` sends it. */
export function serviceLogOptions(query: LogQuery): Record<string, string | boolean> {
  return {
    stdout: true,
    stderr: true,
    timestamps: true,
    follow: query.follow,
    tail: query.tail === null ? "all" : String(query.tail),
    ...(query.since === null ? {} : { since: (query.since / 1000).toFixed(3) }),
  };
}

/** A service's log as timestamped lines; null when the service is gone. Destroying it closes the engine's stream. */
export async function serviceLogStream(docker: Docker, serviceId: string, query: LogQuery): Promise<Readable | null> {
  const abort = new AbortController();
  let raw: Readable;
  try {
    raw = (await new Promise<Readable>((resolve, reject) => {
      docker.modem.dial({
        path: `/services/${encodeURIComponent(serviceId)}/logs?`,
        method: "GET",
        isStream: true, // never buffered whole, even without follow
        abortSignal: abort.signal,
        statusCodes: { 200: true, 404: "no such service", 500: "server error", 503: "node is not part of a swarm" },
        options: serviceLogOptions(query),
      }, (err: unknown, data: unknown) => (err ? reject(err as Error) : resolve(data as Readable)));
    }));
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return null;
    throw err;
  }
  const decoder = new DockerLogDecoder();
  raw.on("error", (err) => decoder.destroy(err));
  raw.pipe(decoder);
  decoder.once("close", () => {
    raw.unpipe(decoder);
    raw.destroy();
    abort.abort();
  });
  return decoder;
}

interface ServiceSummary {
  ID: string;
  Spec?: { Labels?: Record<string, string> };
}

interface TaskSummary {
  NodeID?: string;
  ServiceID?: string;
  Status?: { State?: string };
}

/** The swarm's nodes, with how many of this gateway's schedulers and workers run on each. */
export async function swarmNodes(docker: Docker, gatewayId: string): Promise<NodeInfo[]> {
  const nodes = (await docker.listNodes()) as SwarmNode[];
  const services = (await docker.listServices({ filters: { label: [`${LABEL.gateway}=${gatewayId}`] } })) as ServiceSummary[];
  const roles = new Map(services.map((s) => [s.ID, s.Spec?.Labels?.[LABEL.role] ?? ""]));
  const tasks = services.length
    ? ((await docker.listTasks({ filters: { service: services.map((s) => s.ID), "desired-state": ["running"] } })) as TaskSummary[])
    : [];
  return nodes.map((node) => countOn(node, tasks, roles));
}

/** One node's facts and counts (pure, for tests). */
export function countOn(node: SwarmNode, tasks: TaskSummary[], roles: Map<string, string>): NodeInfo {
  const here = tasks.filter((t) => t.NodeID === node.ID && t.Status?.State === "running");
  const count = (role: string) => here.filter((t) => roles.get(t.ServiceID ?? "") === role).length;
  return {
    name: node.Description?.Hostname ?? node.ID,
    role: node.Spec?.Role ?? "worker",
    state: node.Status?.State ?? "unknown",
    availability: node.Spec?.Availability ?? "unknown",
    cores: (node.Description?.Resources?.NanoCPUs ?? 0) / 1e9,
    memoryBytes: node.Description?.Resources?.MemoryBytes ?? 0,
    workers: count("worker"),
    schedulers: count("scheduler"),
  };
}
