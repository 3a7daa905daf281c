/**
 * The one line format of every log the gateway serves: `<RFC 3339 UTC time, ms> <text>\n`, whatever the
 * backend (`docker service logs --timestamps` writes the same shape). Lines are cut at a bounded length, so
 * a process that writes without newlines cannot make a reader buffer without limit.
 */

/** Longest line kept whole; a longer one is split into pieces of this size. */
export const MAX_LINE_BYTES = 16 * 1024;

/** A served line: the time, one space, the text (never containing a newline). */
export function formatLine(timeMs: number, text: string): string {
  return `${new Date(timeMs).toISOString()} ${text}\n`;
}

/** Splits a byte stream into lines; keeps at most MAX_LINE_BYTES of an unfinished line. */
export class LineSplitter {
  private partial: Buffer = Buffer.alloc(0);

  /** The complete lines in `chunk` after what came before (without their newlines, `\r\n` too). */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let data = this.partial.length ? Buffer.concat([this.partial, chunk]) : chunk;
    let start = 0;
    for (let nl = data.indexOf(10, start); nl !== -1; nl = data.indexOf(10, start)) {
      lines.push(...cut(data.subarray(start, nl)));
      start = nl + 1;
    }
    data = data.subarray(start);
    while (data.length >= MAX_LINE_BYTES) {
      lines.push(data.subarray(0, MAX_LINE_BYTES).toString("utf8"));
      data = data.subarray(MAX_LINE_BYTES);
    }
    this.partial = Buffer.from(data); // a copy: the chunk's memory is not held
    return lines;
  }

  /** The unfinished last line, if any (at the end of a stream). */
  flush(): string[] {
    const rest = this.partial.length ? [trimCr(this.partial.toString("utf8"))] : [];
    this.partial = Buffer.alloc(0);
    return rest;
  }
}

function cut(line: Buffer): string[] {
  const pieces: string[] = [];
  for (let i = 0; i < line.length; i += MAX_LINE_BYTES) pieces.push(line.subarray(i, i + MAX_LINE_BYTES).toString("utf8"));
  if (pieces.length === 0) pieces.push("");
  pieces[pieces.length - 1] = trimCr(pieces[pieces.length - 1]!);
  return pieces;
}

function trimCr(text: string): string {
  return text.endsWith("\r") ? text.slice(0, -1) : text;
}

/** Parses `tail` and `since` query values; answers an error message naming the bad parameter, or the values. */
export function parseLogQuery(raw: { tail?: unknown; since?: unknown; follow?: unknown }, now: number):
  { ok: true; tail: number | null; since: number | null; follow: boolean } | { ok: false; error: string } {
  const tail = single(raw.tail);
  const since = single(raw.since);
  const follow = single(raw.follow);
  if (tail !== undefined && !/^\d{1,6}$/.test(tail)) return { ok: false, error: `tail must be a whole number of lines (0 to 999999), got '${tail}'` };
  let sinceMs: number | null = null;
  if (since !== undefined) {
    sinceMs = parseSince(since, now);
    if (sinceMs === null) return { ok: false, error: `since must be an RFC 3339 time, Unix seconds, or a duration like 10m or 2h, got '${since}'` };
  }
  if (follow !== undefined && !["", "1", "0", "true", "false"].includes(follow)) {
    return { ok: false, error: `follow must be true, false, 1 or 0, got '${follow}'` };
  }
  return { ok: true, tail: tail === undefined ? null : Number(tail), since: sinceMs, follow: follow === "" || follow === "1" || follow === "true" };
}

function single(value: unknown): string | undefined {
  if (Array.isArray(value)) return value.length ? String(value[value.length - 1]) : undefined;
  return value === undefined ? undefined : String(value);
}

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `2026-12-01T10:00:00Z`, `1764583200` (Unix seconds) or `15m` (that long ago); null for anything else. */
export function parseSince(text: string, now: number): number | null {
  const duration = /^(\d{1,9})([smhd])$/.exec(text);
  if (duration) return now - Number(duration[1]) * UNITS[duration[2]!]!;
  if (/^\d{1,12}(\.\d{1,9})?$/.test(text)) return Math.round(Number(text) * 1000);
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,9})?)?(Z|[+-]\d\d:\d\d)$/.test(text)) return null;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : ms;
}
