#!/usr/bin/env node
// A JavaScript host for the incsync connector component: transpiles the
// component with jco, provides its imports (host-imports.js) and runs one
// sync into a JSON-file warehouse, resuming from the state saved there.
//
//   node host.mjs --component connector.wasm --config config.json --warehouse warehouse.json
//
// Prints a JSON report on stdout; exit 0 on success, 1 if the sync failed,
// 2 on a usage or config error (as the incsync command).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));

function fail(code, message) {
  process.stderr.write(`node-host: error: ${message}\n`);
  process.exit(code);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      component: { type: 'string' },
      config: { type: 'string' },
      warehouse: { type: 'string' },
    },
  }));
} catch (e) {
  fail(2, e.message);
}
for (const key of ['component', 'config', 'warehouse']) {
  if (!args[key]) fail(2, `--${key} is required`);
}

// 1. Transpile the component (once per distinct file) next to node_modules,
//    so the generated code finds @bytecodealliance/preview2-shim for WASI.
const wasm = readFileSync(args.component);
const digest = createHash('sha256').update(wasm).digest('hex').slice(0, 16);
const out = join(here, 'generated', digest);
if (!existsSync(join(out, 'connector.js'))) {
  mkdirSync(out, { recursive: true });
  execFileSync(process.execPath, [
    join(here, 'node_modules', '@bytecodealliance', 'jco', 'dist', 'jco.js'),
    'transpile', resolve(args.component), '--out-dir', out, '--name', 'connector', '--quiet',
    '--map', `incsync:connector/host=${pathToFileURL(join(here, 'host-imports.js')).href}`,
  ], { stdio: ['ignore', 'ignore', 'inherit'] });
}

// 2. The host's part of the config: the sandbox's origins and the credentials.
const configText = readFileSync(args.config, 'utf8');
let config;
try {
  config = JSON.parse(configText);
} catch (e) {
  fail(2, `invalid config: config: not valid JSON (${e.message})`);
}
const secret = (key, template) => String(template).replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name) => {
  if (process.env[name] === undefined) fail(2, `invalid config: ${key}: environment variable ${name} is not set`);
  return process.env[name];
});
const baseOrigin = new URL(config.base_url).origin;
const allowedOrigins = [baseOrigin];
for (const host of config.allowed_hosts ?? []) {
  if (host.includes('://')) allowedOrigins.push(new URL(host).origin);
  else allowedOrigins.push(`http://${host}`, `https://${host}`);
}
const credentialHeaders = {};
const credentialQuery = [];
const auth = config.auth;
if (auth?.type === 'bearer') credentialHeaders.authorization = `Bearer ${secret('auth.token', auth.token)}`;
if (auth?.type === 'basic') {
  const pair = `${secret('auth.username', auth.username)}:${secret('auth.password', auth.password)}`;
  credentialHeaders.authorization = `Basic ${Buffer.from(pair).toString('base64')}`;
}
if (auth?.type === 'header') credentialHeaders[auth.name.toLowerCase()] = secret('auth.value', auth.value);
if (auth?.type === 'query') credentialQuery.push([auth.name, secret('auth.value', auth.value)]);
for (const [name, value] of Object.entries(config.headers ?? {})) {
  credentialHeaders[name.toLowerCase()] = secret(`headers.${name}`, value);
}

const warehouseFile = resolve(args.warehouse);
const warehouse = existsSync(warehouseFile)
  ? JSON.parse(readFileSync(warehouseFile, 'utf8'))
  : { tables: {}, state: null };

// 3. Load the connector and run: schema, then update from the saved state.
const host = await import(pathToFileURL(join(here, 'host-imports.js')).href);
const { source } = await import(pathToFileURL(join(out, 'connector.js')).href);
const message = (e) => (e?.payload ? `${e.payload.tag}: ${e.payload.val}` : String(e?.message ?? e));

let tables;
try {
  tables = source.schema(configText);
} catch (e) {
  fail(e?.payload?.tag === 'invalid-config' ? 2 : 1, message(e));
}
host.configure({
  baseOrigin,
  allowedOrigins,
  credentialHeaders,
  credentialQuery,
  timeoutMs: (config.http?.timeout_seconds ?? 30) * 1000,
  maxBytes: config.http?.max_response_bytes ?? 64 * 1024 * 1024,
  // What one call may pass, as the Rust host allows: twice the largest
  // answer plus 16 MiB.
  maxCallBytes: 2 * (config.http?.max_response_bytes ?? 64 * 1024 * 1024) + 16 * 1024 * 1024,
  primaryKeys: Object.fromEntries(tables.map((t) => [t.name, t.primaryKey])),
  warehouseFile,
  warehouse,
});

const started = performance.now();
try {
  source.update(configText, warehouse.state ?? undefined);
} catch (e) {
  host.rollback();
  await host.shutdown();
  fail(e?.payload?.tag === 'invalid-config' ? 2 : 1, `${message(e)} (the warehouse keeps its last checkpoint)`);
}
await host.shutdown();
const rowsInWarehouse = Object.fromEntries(
  tables.map((t) => [t.name, Object.keys(warehouse.tables[t.name] ?? {}).length]),
);
process.stdout.write(`${JSON.stringify({
  ...host.report(),
  rows_in_warehouse: rowsInWarehouse,
  state: warehouse.state === null ? null : JSON.parse(warehouse.state),
  elapsed_ms: performance.now() - started,
})}\n`);
