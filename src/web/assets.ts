/**
 * The page's files, all served by the gateway itself: the HTML shell, the stylesheet, the page's own modules
 * (compiled by `tsc -p src/web/client` into dist/web/client) and Preact's browser modules from node_modules.
 * Browsers cannot resolve bare imports (`from "preact"`) without an import map, which is an inline script;
 * instead each module's bare imports are rewritten here to relative paths, so the page also works under any
 * path prefix a reverse proxy adds.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The project root: src/web and dist/web are both two levels below it. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const require = createRequire(import.meta.url);
const PREACT = dirname(require.resolve("preact/package.json"));

/** Bare module names the page imports, and the vendor file each one is served as (under ui/vendor/). */
const VENDOR: Record<string, { file: string; served: string }> = {
  preact: { file: join(PREACT, "dist/preact.mjs"), served: "preact.mjs" },
  "preact/hooks": { file: join(PREACT, "hooks/dist/hooks.mjs"), served: "hooks.mjs" },
  "preact/jsx-runtime": { file: join(PREACT, "jsx-runtime/dist/jsxRuntime.mjs"), served: "jsx-runtime.mjs" },
};

/** The Content-Security-Policy of every page response: nothing inline, nothing from elsewhere. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self'", "connect-src 'self'",
  "font-src 'self'", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'",
].join("; ");

export interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/** Every file under ui/, by its path there (`app.js`, `vendor/preact.mjs`, `style.css`). */
export function loadAssets(): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  const add = (path: string, text: string | Buffer, type: string) => {
    const body = Buffer.isBuffer(text) ? text : Buffer.from(text);
    assets.set(path, { body, type, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"` });
  };
  for (const v of Object.values(VENDOR)) add(`vendor/${v.served}`, rewriteImports(readFileSync(v.file, "utf8"), "./"), "text/javascript; charset=utf-8");
  const clientDir = join(ROOT, "dist/web/client");
  if (existsSync(clientDir)) {
    for (const file of readdirSync(clientDir).filter((f) => f.endsWith(".js"))) {
      add(file, rewriteImports(readFileSync(join(clientDir, file), "utf8"), "./vendor/"), "text/javascript; charset=utf-8");
    }
  }
  const staticDir = join(ROOT, "src/web/static");
  for (const file of readdirSync(staticDir)) {
    const type = file.endsWith(".css") ? "text/css; charset=utf-8" : file.endsWith(".svg") ? "image/svg+xml" : "application/octet-stream";
    add(file, readFileSync(join(staticDir, file)), type);
  }
  return assets;
}

/** Rewrites `from "preact/hooks"` (and `import "preact"`) to the served vendor file, relative to `prefix`. */
export function rewriteImports(code: string, prefix: string): string {
  return code.replace(/(\bfrom\s*|\bimport\s*)(["'])(preact(?:\/hooks|\/jsx-runtime)?)\2/g, (_all, keyword: string, quote: string, name: string) => {
    return `${keyword}${quote}${prefix}${VENDOR[name]!.served}${quote}`;
  });
}

/** The HTML shell: every URL relative, so that a path prefix added by a reverse proxy just works. */
export const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Dask Gateway</title>
<link rel="icon" href="ui/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="ui/style.css">
<script type="module" src="ui/app.js"></script>
</head>
<body>
<div id="app"><p class="boot">Loading…</p></div>
<noscript><p class="boot">This page needs JavaScript. The API works without it: see the README.</p></noscript>
</body>
</html>
`;
