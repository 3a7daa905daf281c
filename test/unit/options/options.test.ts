import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fieldSpec, parseOptions, pythonRepr, validateFieldDefinition, type FieldDefinition } from "../../../src/options/fields.js";
import { clampAdapt, clampScale, deriveMaxWorkers } from "../../../src/options/limits.js";

const SIX: FieldDefinition[] = [
  { type: "string", field: "s" },
  { type: "bool", field: "b", default: true, label: "B" },
  { type: "int", field: "i", default: 1, min: 1, max: 4 },
  { type: "float", field: "f", default: 0.5, min: 0.25 },
  { type: "select", field: "option_two", options: ["small", { key: "large", value: 8 }], target: "size" },
  { type: "mapping", field: "m" },
];

describe("option specs", () => {
  it("has exactly the keys the client's constructors accept", () => {
    expect(SIX.map(fieldSpec)).toEqual([
      { field: "s", label: "s", default: "", spec: { type: "string" } },
      { field: "b", label: "B", default: true, spec: { type: "bool" } },
      { field: "i", label: "i", default: 1, spec: { type: "int", min: 1, max: 4 } },
      { field: "f", label: "f", default: 0.5, spec: { type: "float", min: 0.25, max: null } },
      { field: "option_two", label: "option_two", default: "small", spec: { type: "select", options: ["small", "large"] } },
      { field: "m", label: "m", default: {}, spec: { type: "mapping" } },
    ]);
  });

  it("refuses definitions the client would crash on", () => {
    expect(validateFieldDefinition({ type: "int", field: "x", default: 9, max: 4 })).toMatch(/'x'.*default/);
    expect(validateFieldDefinition({ type: "select", field: "x", options: [] })).toMatch(/'x'/);
    expect(validateFieldDefinition({ type: "select", field: "x", options: ["a"], default: "b" })).toMatch(/'x'/);
    expect(validateFieldDefinition({ type: "nope", field: "x" } as unknown as FieldDefinition)).toMatch(/type must be/);
    for (const def of SIX) expect(validateFieldDefinition(def)).toBeNull();
  });
});

describe("parseOptions", () => {
  it("fills defaults and maps select keys to values", () => {
    const r = parseOptions(SIX, { option_two: "large", i: 2 });
    expect(r).toEqual({
      ok: true,
      options: { s: "", b: true, i: 2, f: 0.5, option_two: "large", m: {} },
      config: { s: "", b: true, i: 2, f: 0.5, size: 8, m: {} },
    });
  });

  it("uses the reference's error texts", () => {
    const err = (request: unknown) => {
      const r = parseOptions(SIX, request);
      return r.ok ? null : r.error;
    };
    expect(err({ zz: 1, aa: 2 })).toBe("Unknown fields ['aa', 'zz']");
    expect(err({ option_two: "medium" })).toBe("'medium' is not a valid option for option_two");
    expect(err({ s: 1 })).toBe("s must be a string, got 1");
    expect(err({ b: "yes" })).toBe("b must be a bool, got 'yes'");
    expect(err({ i: 2.5 })).toBe("i must be an integer, got 2.5");
    expect(err({ i: 0 })).toBe("i must be >= 1.000000, got 0");
    expect(err({ i: 5 })).toBe("i must be <= 4.000000, got 5");
    expect(err({ f: "x" })).toBe("f must be a float, got 'x'");
    expect(err({ m: [1] })).toBe("m must be a mapping, got [1]");
    expect(err({ s: null })).toBe("s must be a string, got None");
    expect(err([1])).toMatch(/must be a mapping/);
  });

  it("accepts booleans for int fields, as Python's bool is an int", () => {
    expect(parseOptions(SIX, { i: true }).ok).toBe(true);
  });

  it("never throws, whatever the JSON", () => {
    fc.assert(fc.property(fc.jsonValue(), (value) => {
      parseOptions(SIX, value);
      parseOptions(SIX, { i: value, m: value, option_two: value });
    }));
  });

  it("writes Python reprs", () => {
    expect(pythonRepr({ a: [true, null, "x"] })).toBe("{'a': [True, None, 'x']}");
  });
});

describe("limits", () => {
  it("clamps scale and adapt with the reference's texts", () => {
    expect(clampScale(3, 2)).toEqual({ count: 2, msg: "Scale request of 3 workers would exceed resource limit of 2 workers. Scaling to 2 instead." });
    expect(clampScale(2, 2).msg).toBeNull();
    expect(clampScale(100, null).msg).toBeNull();
    expect(clampAdapt(null, 3, 2).msg).toContain("Using `maximum=2, minimum=0` instead");
    expect(clampAdapt(3, 4, 2).msg).toContain("Using `maximum=2, minimum=2` instead");
    expect(clampAdapt(null, null, 2)).toEqual({ minimum: 0, maximum: 2, msg: null });
    expect(clampAdapt(null, null, null)).toEqual({ minimum: null, maximum: null, msg: null });
  });

  it("derives the worker limit from cores and memory", () => {
    const GiB = 1024 ** 3;
    const base = { clusterMaxWorkers: null, clusterMaxCores: null, clusterMaxMemory: null, schedulerCores: 1, schedulerMemory: 2 * GiB, workerCores: 2, workerMemory: 4 * GiB };
    expect(deriveMaxWorkers(base)).toBeNull();
    expect(deriveMaxWorkers({ ...base, clusterMaxCores: 9 })).toBe(4);
    expect(deriveMaxWorkers({ ...base, clusterMaxCores: 9, clusterMaxMemory: 10 * GiB, clusterMaxWorkers: 5 })).toBe(2);
    expect(() => deriveMaxWorkers({ ...base, clusterMaxMemory: GiB })).toThrow(/Scheduler memory request of 2.0 G exceeds cluster memory limit of 1.0 G/);
  });
});
