/**
 * Live updates for the web page as Server-Sent Events: each subscriber gets its clusters (an admin may ask for
 * everyone's) at once, then again whenever they change. One timer looks once a second while anyone listens.
 * A subscriber whose connection does not take what was written gets nothing more until it drains, and then
 * only the latest state: nothing queues up per subscriber. Closing the connection removes every listener.
 */
import type { ServerResponse } from "node:http";
import type { ClusterManager } from "../clusters/manager.js";
import { CLUSTER_STATUSES } from "../clusters/model.js";
import { uiCluster } from "./view.js";

export interface LiveOptions {
  tickMs?: number;
  /** Keep-alive comments, so that proxies keep idle streams open. */
  keepAliveMs?: number;
  maxSubscribers?: number;
  maxPerUser?: number;
}

interface Subscriber {
  res: ServerResponse;
  user: string;
  /** null: every user's clusters. */
  scope: string | null;
  last: string;
  blocked: boolean;
  lastWrite: number;
}

export class LiveHub {
  private readonly subscribers = new Set<Subscriber>();
  private timer: NodeJS.Timeout | undefined;
  private readonly tickMs: number;
  private readonly keepAliveMs: number;

  constructor(private readonly manager: ClusterManager, private readonly opts: LiveOptions = {}) {
    this.tickMs = opts.tickMs ?? 1_000;
    this.keepAliveMs = opts.keepAliveMs ?? 15_000;
  }

  /** Why a new subscriber is refused (limits), or null. */
  refusal(user: string): string | null {
    const max = this.opts.maxSubscribers ?? 500;
    if (this.subscribers.size >= max) return `the gateway already serves ${max} live pages; try again later`;
    const perUser = this.opts.maxPerUser ?? 20;
    if ([...this.subscribers].filter((s) => s.user === user).length >= perUser) return `user ${user} already has ${perUser} live pages open; close some`;
    return null;
  }

  /** Takes over the response as an event stream of the user's clusters (scope null: everyone's). */
  subscribe(res: ServerResponse, user: string, scope: string | null): void {
    res.writeHead(200, {
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-store",
      "X-Accel-Buffering": "no",
      "X-Content-Type-Options": "nosniff",
    });
    const sub: Subscriber = { res, user, scope, last: "", blocked: false, lastWrite: Date.now() };
    const onDrain = () => {
      sub.blocked = false;
      this.send(sub, this.snapshot(sub.scope, new Map()));
    };
    const onClose = () => {
      res.removeListener("drain", onDrain);
      res.removeListener("close", onClose);
      this.subscribers.delete(sub);
      if (this.subscribers.size === 0) this.stopTimer();
    };
    res.on("drain", onDrain);
    res.on("close", onClose);
    this.subscribers.add(sub);
    res.write("retry: 3000\n\n");
    this.send(sub, this.snapshot(scope, new Map()));
    this.timer ??= setInterval(() => this.tick(), this.tickMs).unref();
  }

  /** Ends every stream (the gateway stops). */
  close(): void {
    for (const sub of [...this.subscribers]) sub.res.end();
    this.stopTimer();
  }

  private tick(): void {
    const cache = new Map<string, string>();
    const now = Date.now();
    for (const sub of this.subscribers) {
      if (sub.blocked) continue;
      if (!this.send(sub, this.snapshot(sub.scope, cache)) && now - sub.lastWrite >= this.keepAliveMs) this.write(sub, ": keep-alive\n\n");
    }
  }

  /** The `clusters` event data for a scope, computed once per tick for every subscriber of that scope. */
  private snapshot(scope: string | null, cache: Map<string, string>): string {
    const key = scope ?? "\0all";
    let data = cache.get(key);
    if (data === undefined) {
      const clusters = this.manager.list(scope, CLUSTER_STATUSES).map(uiCluster).sort((a, b) => b.createdAt - a.createdAt);
      data = JSON.stringify({ clusters });
      cache.set(key, data);
    }
    return data;
  }

  /** Writes the snapshot if it changed; answers whether it wrote. */
  private send(sub: Subscriber, data: string): boolean {
    if (data === sub.last || sub.blocked) return false;
    sub.last = data;
    this.write(sub, `event: clusters\ndata: ${data}\n\n`);
    return true;
  }

  private write(sub: Subscriber, text: string): void {
    sub.lastWrite = Date.now();
    if (!sub.res.write(text)) sub.blocked = true;
  }

  private stopTimer(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
