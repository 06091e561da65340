#!/usr/bin/env node
// A JavaScript host for the incsync connector component: transpiles the
// component with jco, runs it in a worker thread (sync-worker.mjs) with its
// imports (host-imports.js), and syncs into a JSON-file warehouse, resuming
// from the state saved there. This thread is the supervisor: it reads the
// config, resolves the secrets, and stops the worker at the sandbox's
// deadline (compute without a host call) or its wall-clock limit.
//
//   node host.mjs --component connector.wasm --config config.json --warehouse warehouse.json
//
// Prints a JSON report on stdout; exit 0 on success, 1 if the sync failed,
// 2 on a usage or config error (as the incsync command).
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { capMemory } from './memory-cap.mjs';
import {
  Blanker, HOST_KEYS, allowedOrigins, isCredentialHeader, literalAddresses, originOf, printable,
} from './sandbox.mjs';

const here = dirname(fileURLToPath(import.meta.url));
let blanker = new Blanker();

function fail(code, message) {
  process.stderr.write(`node-host: error: ${printable(message, 4096, blanker)}\n`);
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

// 1. The config: the host's keys (origins, credentials, limits) stay here;
//    the connector gets the rest, as the Rust host hands it over.
let config;
try {
  config = JSON.parse(readFileSync(args.config, 'utf8'));
} catch (e) {
  fail(2, `invalid config: config: ${e.code ? e.message : `not valid JSON (${e.message})`}`);
}
const configError = (message) => fail(2, `invalid config: ${message}`);
const http = config.http ?? {};
const sandbox = config.sandbox ?? {};
if (http.proxy !== undefined) configError('http.proxy: the Node host sends no request through a proxy; run the incsync binary for that');

/// A `${VAR}`, `${file:PATH}` and `$$` template, resolved (the Rust host's
/// secrets.rs); errors never quote the template, which may hold a secret.
const secrets = [];
function secret(key, template) {
  let out = '';
  let rest = String(template);
  for (;;) {
    const at = rest.indexOf('$');
    if (at < 0) break;
    out += rest.slice(0, at);
    rest = rest.slice(at + 1);
    if (rest.startsWith('$')) {
      out += '$';
      rest = rest.slice(1);
      continue;
    }
    if (!rest.startsWith('{')) configError(`${key}: a \`$\` must start \`\${VAR}\`, \`\${file:PATH}\` or be doubled (\`$$\`)`);
    const end = rest.indexOf('}');
    if (end < 0) configError(`${key}: a \`\${\` without a closing \`}\``);
    const name = rest.slice(1, end);
    rest = rest.slice(end + 1);
    let value;
    if (name.startsWith('file:')) {
      try { value = readFileSync(name.slice(5), 'utf8').replace(/\n$/, ''); } catch (e) {
        configError(`${key}: the secret file \`${name.slice(5)}\` cannot be read: ${e.code ?? e.message}`);
      }
    } else if (!/^[A-Za-z0-9_]+$/.test(name)) {
      configError(`${key}: \`\${${name}}\` is not a variable name (letters, digits and \`_\`)`);
    } else {
      value = process.env[name];
      if (value === undefined) configError(`${key}: the environment variable \`${name}\` is not set`);
      if (value === '') configError(`${key}: the environment variable \`${name}\` is empty`);
    }
    secrets.push(value);
    out += value;
  }
  return out + rest;
}

let origins;
try {
  origins = allowedOrigins(config.base_url, config.allowed_hosts ?? []);
} catch (e) {
  configError(e.message);
}
const credentialHeaders = {};
const credentialQuery = [];
const auth = config.auth;
const keep = (value) => {
  secrets.push(value);
  return value;
};
if (auth?.type === 'bearer') credentialHeaders.authorization = `Bearer ${keep(secret('auth.token', auth.token))}`;
if (auth?.type === 'basic') {
  const pair = `${keep(secret('auth.username', auth.username))}:${keep(secret('auth.password', auth.password))}`;
  credentialHeaders.authorization = `Basic ${keep(Buffer.from(pair).toString('base64'))}`;
}
if (auth?.type === 'header') credentialHeaders[auth.name.toLowerCase()] = keep(secret('auth.value', auth.value));
if (auth?.type === 'query') credentialQuery.push([auth.name, keep(secret('auth.value', auth.value))]);
for (const [name, value] of Object.entries(config.headers ?? {})) {
  const resolved = secret(`headers.${name}`, value);
  // A credential-named header is a secret even when written literally.
  if (isCredentialHeader(name)) secrets.push(resolved);
  credentialHeaders[name.toLowerCase()] = resolved;
}
blanker = new Blanker(secrets);

const methods = ['GET', 'HEAD'];
if ((config.streams ?? []).some((s) => String(s?.method ?? '').toUpperCase() === 'POST')) methods.push('POST');
for (const m of http.allow_methods ?? []) {
  const name = String(m).toUpperCase();
  if (!['POST', 'PUT', 'PATCH', 'DELETE'].includes(name)) configError(`http.allow_methods: \`${printable(m, 100)}\` is not POST, PUT, PATCH or DELETE`);
  if (!methods.includes(name)) methods.push(name);
}
const positive = (value, key, fallback) => {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value <= 0) configError(`${key}: must be a whole number above 0`);
  return value;
};
const maxBytes = positive(http.max_response_bytes, 'http.max_response_bytes', 64 * 1024 * 1024);
const memoryMb = positive(sandbox.memory_mb, 'sandbox.memory_mb', 512);
const deadlineMs = positive(sandbox.deadline_seconds, 'sandbox.deadline_seconds', 10) * 1000;
const maxRunMs = sandbox.max_run_seconds === undefined ? null : positive(sandbox.max_run_seconds, 'sandbox.max_run_seconds') * 1000;

const connectorConfig = JSON.stringify(
  Object.fromEntries(Object.entries(config).filter(([k]) => !HOST_KEYS.includes(k))),
);

// 2. Transpile the component (once per distinct file and memory cap) next
//    to node_modules, so the generated code finds
//    @bytecodealliance/preview2-shim for WASI; into a fresh directory
//    renamed into place, so two hosts starting at once never read half a
//    transpile. Its core module's memory is capped at sandbox.memory_mb.
const wasm = readFileSync(args.component);
const digest = createHash('sha256').update(wasm).digest('hex').slice(0, 16);
const out = join(here, 'generated', `${digest}-m${memoryMb}`);
if (!existsSync(join(out, 'connector.js'))) {
  const tmp = join(here, 'generated', `.${digest}.${process.pid}.${randomBytes(4).toString('hex')}`);
  mkdirSync(tmp, { recursive: true });
  try {
    execFileSync(process.execPath, [
      join(here, 'node_modules', '@bytecodealliance', 'jco', 'dist', 'jco.js'),
      'transpile', resolve(args.component), '--out-dir', tmp, '--name', 'connector', '--quiet',
      '--map', `incsync:connector/host=${pathToFileURL(join(here, 'host-imports.js')).href}`,
    ], { stdio: ['ignore', 'ignore', 'inherit'] });
    const core = join(tmp, 'connector.core.wasm');
    writeFileSync(core, capMemory(readFileSync(core), memoryMb * 16).bytes);
    try {
      renameSync(tmp, out);
    } catch (e) {
      // Another host finished first: its copy is the same.
      if (!existsSync(join(out, 'connector.js'))) throw e;
    }
  } catch (e) {
    fail(1, `cannot prepare the component: ${e.message}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

// 3. Run the sync in a worker, and watch it.
const progress = new Int32Array(new SharedArrayBuffer(8));
const worker = new Worker(new URL('./sync-worker.mjs', import.meta.url), {
  workerData: {
    generated: out,
    connectorConfig,
    maxTables: 1000,
    progress,
    settings: {
      baseOrigin: originOf(new URL(config.base_url)),
      allowedOrigins: origins,
      credentialHeaders,
      credentialQuery,
      secrets,
      methods,
      maxRedirects: 5,
      timeoutMs: positive(http.timeout_seconds, 'http.timeout_seconds', 30) * 1000,
      maxBytes,
      // What one call may pass, as the Rust host allows: twice the largest
      // answer plus 16 MiB.
      maxCallBytes: 2 * maxBytes + 16 * 1024 * 1024,
      maxCheckpoints: positive(sandbox.max_checkpoints, 'sandbox.max_checkpoints', 1_000_000),
      memoryMb,
      policy: {
        named: literalAddresses(origins),
        allowPrivateNetworks: http.allow_private_networks === true,
      },
      warehouseFile: resolve(args.warehouse),
    },
  },
  stdout: true,
  stderr: true,
});

// The guest's own stdout and stderr (WASI's, which the shim writes from
// the worker): escaped, secrets blanked, and capped at 64 KiB together, as
// the Rust host caps a guest's stderr; stdout stays this host's report.
const MAX_GUEST_OUTPUT = 64 << 10;
let guestOutput = 0;
for (const stream of [worker.stdout, worker.stderr]) {
  const text = new TextDecoder('utf-8', { fatal: false });
  stream.on('data', (chunk) => {
    if (guestOutput > MAX_GUEST_OUTPUT) return;
    const lines = text.decode(chunk, { stream: true }).split('\n');
    const shown = lines.map((l) => printable(l, MAX_GUEST_OUTPUT, blanker)).join('\n');
    guestOutput += shown.length;
    if (guestOutput > MAX_GUEST_OUTPUT) {
      process.stderr.write(`${shown.slice(0, Math.max(0, shown.length - (guestOutput - MAX_GUEST_OUTPUT)))}\nnode-host: the connector printed more than ${MAX_GUEST_OUTPUT >> 10} KiB; the rest is dropped\n`);
    } else {
      process.stderr.write(shown);
    }
  });
}

let started = null;
let lastCount = 0;
let lastProgress = 0;
let stopped = null;
const stop = (why) => {
  stopped = why;
  clearInterval(watch);
  worker.terminate();
};
const watch = setInterval(() => {
  if (started === null) return;
  const now = performance.now();
  const count = Atomics.load(progress, 0);
  if (count !== lastCount || Atomics.load(progress, 1) === 1) {
    lastCount = count;
    lastProgress = now;
  } else if (now - lastProgress > deadlineMs) {
    stop(`the connector computed for more than ${deadlineMs / 1000} s without calling the host (an endless loop?) and was stopped; raise sandbox.deadline_seconds if it needs longer`);
  }
  if (maxRunMs !== null && now - started > maxRunMs) {
    stop(`the run took longer than sandbox.max_run_seconds (${maxRunMs / 1000} s) and was stopped`);
  }
}, 50);

worker.on('message', (m) => {
  if (m.type === 'log') {
    process.stderr.write(`${m.line}\n`);
  } else if (m.type === 'ready') {
    started = performance.now();
    lastProgress = started;
  } else if (m.type === 'failed') {
    clearInterval(watch);
    fail(m.code, m.message);
  } else if (m.type === 'done') {
    clearInterval(watch);
    process.stdout.write(`${JSON.stringify({
      ...m.report,
      rows_in_warehouse: m.rows_in_warehouse,
      state: m.state,
      elapsed_ms: performance.now() - started,
    })}\n`);
    process.exit(0);
  }
});
worker.on('error', (e) => {
  clearInterval(watch);
  fail(1, `${e?.message ?? e} (the warehouse keeps its last checkpoint)`);
});
worker.on('exit', () => {
  clearInterval(watch);
  if (stopped) fail(1, `${stopped} (the warehouse keeps its last checkpoint)`);
  fail(1, 'the sync worker ended without a result');
});
