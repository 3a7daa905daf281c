/**
 * Packages only some requests or modes need are loaded at their first use, not at start: an idle gateway does not
 * hold them (bench/README.md, "what the idle gateway held"). Synchronous, so a first use needs no await.
 */
import { createRequire } from "node:module";

const requireFromHere = createRequire(import.meta.url);

/** The package `name`, loaded now if it was not yet (Node caches it). */
export function loadPackage<T>(name: string): T {
  return requireFromHere(name) as T;
}
