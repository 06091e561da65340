// The sync thread: loads the transpiled connector with its imports
// (host-imports.js), then runs `schema` and `update` from the warehouse's
// saved state. host.mjs starts it and watches it: it may be stopped at any
// moment (a deadline), which loses nothing a checkpoint wrote.
import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { readPrivate } from './warehouse-file.mjs';

const { settings, progress, generated, connectorConfig, maxTables } = workerData;
const host = await import(new URL('./host-imports.js', import.meta.url).href);

const failed = (code, message) => parentPort.postMessage({ type: 'failed', code, message: host.blank(message) });
// A WIT `error` of the connector, or a trap (a WebAssembly RuntimeError).
const message = (e) => {
  if (e?.payload) return `${e.payload.tag}: ${e.payload.val}`;
  if (e instanceof WebAssembly.RuntimeError) {
    return `the connector trapped (${e.message}); a connector that cannot allocate memory stops this way: its memory is capped at ${settings.memoryMb} MiB (sandbox.memory_mb)`;
  }
  return String(e?.message ?? e);
};
const codeOf = (e) => (e?.payload?.tag === 'invalid-config' ? 2 : 1);

async function main() {
  let warehouse;
  try {
    const text = readPrivate(settings.warehouseFile);
    warehouse = text === null ? { tables: {}, state: null } : JSON.parse(text);
  } catch (e) {
    failed(1, `warehouse: ${e.message}`);
    return;
  }
  host.configure({ ...settings, warehouse }, progress);

  const { source } = await import(pathToFileURL(join(generated, 'connector.js')).href);
  parentPort.postMessage({ type: 'ready' });

  let tables;
  try {
    tables = source.schema(connectorConfig);
  } catch (e) {
    failed(codeOf(e), message(e));
    await host.shutdown();
    return;
  }
  if (tables.length > maxTables) {
    failed(1, `the connector declared ${tables.length} tables, more than the ${maxTables} a run accepts`);
    await host.shutdown();
    return;
  }
  host.declare(tables);

  try {
    source.update(connectorConfig, warehouse.state ?? undefined);
  } catch (e) {
    host.rollback();
    failed(codeOf(e), `${message(e)} (the warehouse keeps its last checkpoint)`);
    await host.shutdown();
    return;
  }
  await host.shutdown();
  parentPort.postMessage({
    type: 'done',
    report: host.report(),
    rows_in_warehouse: Object.fromEntries(tables.map((t) => [t.name, Object.keys(warehouse.tables[t.name] ?? {}).length])),
    state: warehouse.state === null ? null : JSON.parse(warehouse.state),
  });
}

await main();
