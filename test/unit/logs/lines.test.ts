import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LineSplitter, MAX_LINE_BYTES, formatLine, parseLogQuery, parseSince } from "../../../src/logs/lines.js";

describe("LineSplitter", () => {
  it("joins lines across chunks, drops \\r of \\r\\n, and keeps the unfinished end for flush", () => {
    const s = new LineSplitter();
    expect(s.push(Buffer.from("one\r\ntw"))).toEqual(["one"]);
    expect(s.push(Buffer.from("o\n\nthr"))).toEqual(["two", ""]);
    expect(s.flush()).toEqual(["thr"]);
    expect(s.flush()).toEqual([]);
  });

  it("cuts a line longer than MAX_LINE_BYTES, so an endless line never buffers without limit", () => {
    const s = new LineSplitter();
    const out = s.push(Buffer.alloc(MAX_LINE_BYTES * 2 + 10, "a"));
    expect(out.map((l) => l.length)).toEqual([MAX_LINE_BYTES, MAX_LINE_BYTES]);
    expect(s.flush()).toEqual(["a".repeat(10)]);
  });

  it("gives the same lines however the bytes are chunked", () => {
    fc.assert(fc.property(fc.array(fc.stringMatching(/^[a-z ]{0,20}$/), { maxLength: 20 }), fc.array(fc.nat(40), { maxLength: 10 }), (lines, cuts) => {
      const text = Buffer.from(lines.map((l) => `${l}\n`).join(""));
      const s = new LineSplitter();
      const got: string[] = [];
      let at = 0;
      for (const cut of cuts) {
        got.push(...s.push(text.subarray(at, Math.min(text.length, at + cut))));
        at = Math.min(text.length, at + cut);
      }
      got.push(...s.push(text.subarray(at)), ...s.flush());
      expect(got).toEqual(lines);
    }));
  });
});

describe("log queries", () => {
  const now = Date.parse("2026-12-01T12:00:00Z");

  it("formats a line as RFC 3339 UTC time, a space and the text", () => {
    expect(formatLine(now, "hello")).toBe("2026-12-01T12:00:00.000Z hello\n");
  });

  it("reads since as RFC 3339, Unix seconds or a duration ago", () => {
    expect(parseSince("2026-12-01T11:00:00Z", now)).toBe(now - 3_600_000);
    expect(parseSince("2026-12-01T13:00:00+02:00", now)).toBe(now - 3_600_000);
    expect(parseSince("1764583200", now)).toBe(1764583200_000);
    expect(parseSince("10m", now)).toBe(now - 600_000);
    expect(parseSince("2d", now)).toBe(now - 2 * 86_400_000);
    expect(parseSince("yesterday", now)).toBeNull();
    expect(parseSince("2026-13-45T00:00:00Z", now)).toBeNull();
  });

  it("answers a message naming the bad parameter", () => {
    expect(parseLogQuery({ tail: "-1" }, now)).toEqual({ ok: false, error: expect.stringMatching(/^tail /) });
    expect(parseLogQuery({ since: "soon" }, now)).toEqual({ ok: false, error: expect.stringMatching(/^since /) });
    expect(parseLogQuery({ follow: "yes" }, now)).toEqual({ ok: false, error: expect.stringMatching(/^follow /) });
    expect(parseLogQuery({ tail: "20", since: "1m", follow: "1" }, now)).toEqual({ ok: true, tail: 20, since: now - 60_000, follow: true });
    expect(parseLogQuery({ follow: "" }, now)).toMatchObject({ ok: true, tail: null, since: null, follow: true });
    expect(parseLogQuery({ tail: ["5", "7"] }, now)).toMatchObject({ ok: true, tail: 7 });
  });
});
