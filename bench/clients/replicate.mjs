// One RxDB client (memory storage) replicating the buildings collection with an
// endpoint in the rxdb-server wire format (fieldsync's or rxdb-server's own).
//   node replicate.mjs pull ENDPOINT TOKEN EXPECTED BATCH   initial replication, timed
//   node replicate.mjs push ENDPOINT TOKEN COUNT BATCH      COUNT new documents, timed
//   node replicate.mjs pages ENDPOINT TOKEN EXPECTED BATCH  the pull pages alone, no RxDB
// Prints {"seconds": ..., "waiting": ..., "documents": ..., "conflicts": ...} as its
// last line; `waiting` is the part of `seconds` with a handler's request in flight (the
// server and HTTP), the rest is the RxDB client's own work alone.
import { randomUUID } from 'node:crypto';
import { createRxDatabase } from 'rxdb';
import { getRxStorageMemory } from 'rxdb/plugins/storage-memory';
import { replicateRxCollection } from 'rxdb/plugins/replication';
import { buildingsSchema, newBuilding } from './schema.mjs';

const [mode, endpoint, token, count, batch] = process.argv.slice(2);
const batchSize = Number(batch);
const database = await createRxDatabase({ name: `client-${mode}`, storage: getRxStorageMemory() });
await database.addCollections({ buildings: { schema: buildingsSchema } });
const collection = database.buildings;

// Time with at least one request in flight (the client may overlap requests).
let waiting = 0;
let inFlight = 0;
let firstSent = 0;
async function request(method, url, body) {
  if (inFlight++ === 0) firstSent = performance.now();
  try {
    return await send(method, url, body);
  } finally {
    if (--inFlight === 0) waiting += performance.now() - firstSent;
  }
}

async function send(method, url, body) {
  const response = await fetch(url, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${url}: ${response.status} ${await response.text()}`);
  return response.json();
}

let conflicts = 0;
const pull = {
  batchSize,
  async handler(checkpoint, size) {
    const query = new URLSearchParams({
      lwt: String(checkpoint?.lwt ?? checkpoint?.updatedAt ?? 0),
      id: checkpoint?.id ?? '',
      limit: String(size),
    });
    if (checkpoint?.since !== undefined) query.set('since', String(checkpoint.since));
    return request('GET', `${endpoint}/pull?${query}`);
  },
};
const push = {
  batchSize,
  async handler(rows) {
    const answer = await request('POST', `${endpoint}/push`, rows);
    conflicts += answer.length;
    return answer;
  },
};

if (mode === 'pages') {
  // The pull pages alone, through the same handler, without RxDB.
  const started = performance.now();
  let checkpoint;
  let documents = 0;
  for (;;) {
    const page = await pull.handler(checkpoint, batchSize);
    documents += page.documents.length;
    checkpoint = page.checkpoint;
    if (page.documents.length < batchSize) break;
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ seconds, waiting: waiting / 1000, documents, conflicts }));
  process.exit(0);
}
if (mode === 'push') {
  await collection.bulkInsert(
    Array.from({ length: Number(count) }, (_, n) => newBuilding(randomUUID(), n)),
  );
}
const started = performance.now();
const replication = replicateRxCollection({
  collection,
  replicationIdentifier: `bench:${endpoint}`,
  live: false,
  retryTime: 1000,
  ...(mode === 'pull' ? { pull } : { push }),
});
const errors = [];
replication.error$.subscribe((error) => errors.push(String(error?.message ?? error)));
await replication.awaitInitialReplication();
const seconds = (performance.now() - started) / 1000;
const documents = await collection.count().exec();
await replication.cancel();
if (errors.length) {
  console.error(errors.slice(0, 3).join('\n'));
  process.exit(1);
}
if (mode === 'pull' && documents !== Number(count)) {
  console.error(`pulled ${documents} documents, ${count} expected`);
  process.exit(1);
}
console.log(JSON.stringify({ seconds, waiting: waiting / 1000, documents, conflicts }));
process.exit(0);
