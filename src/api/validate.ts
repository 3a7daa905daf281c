/**
 * Request-body validation against the wire protocol in protocol/openapi.json, so that the schemas
 * exist once. Errors name the offending field.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Ajv2020 as Ajv, ErrorObject, ValidateFunction } from "ajv/dist/2020.js";
import type addFormatsModule from "ajv-formats";
import { loadPackage } from "../lazy.js";

const PROTOCOL_FILE = resolve(dirname(fileURLToPath(import.meta.url)), "../../protocol/openapi.json");

/** The parsed OpenAPI document (read once). */
export const openapi: { info: { version: string }; components: { schemas: Record<string, unknown> } } = JSON.parse(
  readFileSync(PROTOCOL_FILE, "utf8"),
);

/** The validator, made at the first request body (Ajv and its formats are not loaded before). */
let ajv: Ajv | undefined;
function validator(): Ajv {
  if (ajv) return ajv;
  const { Ajv2020 } = loadPackage<typeof import("ajv/dist/2020.js")>("ajv/dist/2020.js");
  ajv = new Ajv2020({ strict: false, allErrors: false });
  loadPackage<typeof addFormatsModule>("ajv-formats").default(ajv);
  ajv.addSchema(openapi, "openapi.json");
  return ajv;
}

const compiled = new Map<string, ValidateFunction>();

/** Validates a value against `#/components/schemas/<name>`; answers null or a message naming the field. */
export function validateSchema(name: string, value: unknown): string | null {
  let validate = compiled.get(name);
  if (!validate) {
    validate = validator().compile({ $ref: `openapi.json#/components/schemas/${name}` });
    compiled.set(name, validate);
  }
  return validate(value) ? null : describe(validate.errors?.[0]);
}

function describe(error: ErrorObject | undefined): string {
  if (!error) return "invalid request body";
  const path = error.instancePath.replace(/^\//, "").replace(/\//g, ".");
  if (error.keyword === "required") return `missing field '${(error.params as { missingProperty: string }).missingProperty}'${path ? ` in ${path}` : ""}`;
  if (error.keyword === "additionalProperties") {
    return `unknown field '${(error.params as { additionalProperty: string }).additionalProperty}'${path ? ` in ${path}` : ""}`;
  }
  return `${path ? `field '${path}'` : "request body"} ${error.message ?? "is invalid"}`;
}

