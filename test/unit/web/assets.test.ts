import { describe, expect, it } from "vitest";
import { CONTENT_SECURITY_POLICY, INDEX_HTML, loadAssets, rewriteImports } from "../../../src/web/assets.js";

describe("the page's files", () => {
  it("rewrites bare Preact imports to the vendor files the gateway serves, relative to the module", () => {
    expect(rewriteImports('import { h } from "preact";\nimport{useState as u}from"preact/hooks";import "preact/jsx-runtime";', "./vendor/"))
      .toBe('import { h } from "./vendor/preact.mjs";\nimport{useState as u}from"./vendor/hooks.mjs";import "./vendor/jsx-runtime.mjs";');
    expect(rewriteImports('import x from "preact-router"; const s = "from preact";', "./")).toBe('import x from "preact-router"; const s = "from preact";');
  });

  it("serves Preact from node_modules with no bare import left, and a stylesheet", () => {
    const assets = loadAssets();
    for (const name of ["vendor/preact.mjs", "vendor/hooks.mjs", "vendor/jsx-runtime.mjs", "style.css", "icon.svg"]) expect(assets.has(name)).toBe(true);
    for (const [name, asset] of assets) {
      if (name.endsWith(".js") || name.endsWith(".mjs")) expect(asset.body.toString()).not.toMatch(/from\s*["']preact/);
    }
  });

  it("has no inline script or style and only relative URLs; the CSP allows nothing inline or foreign", () => {
    expect(INDEX_HTML).not.toMatch(/<script(?![^>]*\bsrc=)/);
    expect(INDEX_HTML).not.toMatch(/\sstyle=|<style/);
    expect(INDEX_HTML).not.toMatch(/(src|href)="\//);
    expect(CONTENT_SECURITY_POLICY).toContain("script-src 'self'");
    expect(CONTENT_SECURITY_POLICY).not.toMatch(/unsafe|https?:/);
  });
});
