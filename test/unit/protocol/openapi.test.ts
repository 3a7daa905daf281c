import { describe, expect, it } from "vitest";
import { openapi, validateSchema } from "../../../src/api/validate.js";
import { clusterToWire, Job, type ClusterRecord } from "../../../src/clusters/model.js";
import { fieldSpec, type FieldDefinition } from "../../../src/options/fields.js";

type Operation = { operationId?: string; description?: string; responses?: Record<string, unknown> };
const doc = openapi as unknown as { paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, unknown> } };

describe("protocol/openapi.json", () => {
  it("documents every operation", () => {
    const ops = Object.values(doc.paths).flatMap((p) => Object.entries(p).filter(([k]) => k !== "parameters").map(([, op]) => op));
    expect(ops.length).toBeGreaterThanOrEqual(14);
    for (const op of ops) {
      expect(op.operationId).toMatch(/^[a-z][A-Za-z]+$/);
      expect(op.description).toBeTruthy();
      expect(Object.keys(op.responses ?? {}).length).toBeGreaterThan(0);
    }
    expect(Object.keys(doc.paths)).toContain("/api/v1/clusters/");
  });

  it("compiles every schema", () => {
    for (const name of Object.keys(doc.components.schemas)) expect(() => validateSchema(name, {})).not.toThrow();
  });

  it("accepts what the server sends and refuses what would break the client", () => {
    const record = {
      name: "a".repeat(32), user: "u", token: "t", tlsCert: "C", tlsKey: "K", options: {}, config: {} as ClusterRecord["config"],
      status: Job.RUNNING, target: Job.RUNNING, startTime: 1, stopTime: null, count: 0, schedulerAddress: "", dashboardAddress: "http://x:1",
      apiAddress: "", lastHeartbeat: null, workerFailures: 0, reason: null, events: [], state: {}, workers: new Map(), clients: 0, lastClientSeen: 0,
    } satisfies ClusterRecord;
    const wire = clusterToWire(record);
    expect(validateSchema("Cluster", wire)).toBeNull();
    expect(validateSchema("Cluster", { ...wire, extra: 1 })).toMatch(/unknown field 'extra'/);
    expect(validateSchema("Cluster", { ...wire, start_time: null })).toMatch(/start_time/);
    expect(validateSchema("ClusterList", { [wire.name]: wire })).toBeNull();
    const defs: FieldDefinition[] = [
      { type: "int", field: "a", min: 1 }, { type: "float", field: "b" }, { type: "string", field: "c" },
      { type: "bool", field: "d" }, { type: "select", field: "e", options: ["x"] }, { type: "mapping", field: "f" },
    ];
    for (const d of defs) expect(validateSchema("OptionField", fieldSpec({ ...d, default: d.type === "int" ? 1 : undefined } as FieldDefinition))).toBeNull();
    expect(validateSchema("ScaleRequest", { count: -1 })).toMatch(/count/);
    expect(validateSchema("ScaleRequest", { count: true })).toMatch(/count/);
    expect(validateSchema("Heartbeat", { count: 1 })).toMatch(/missing field/);
  });
});
