// The yardstick: RxDB's own Node server (rxdb-server, express adapter, memory storage)
// serving the buildings collection's replication endpoint, seeded with N buildings.
//   node rxdb-server.mjs PORT SEED_COUNT TOKEN
import { randomUUID } from 'node:crypto';
import express from 'express';
import { createRxDatabase } from 'rxdb';
import { getRxStorageMemory } from 'rxdb/plugins/storage-memory';
import { createRxServer } from 'rxdb-server/plugins/server';
import { RxServerAdapterExpress } from 'rxdb-server/plugins/adapter-express';
import { buildingsSchema, newBuilding } from './schema.mjs';

const [port, seedCount, token] = process.argv.slice(2);
const database = await createRxDatabase({ name: 'yardstick', storage: getRxStorageMemory() });
await database.addCollections({ buildings: { schema: buildingsSchema } });
const updatedAt = new Date().toISOString();
const seed = Array.from({ length: Number(seedCount) }, (_, n) => ({
  ...newBuilding(randomUUID(), n), updated_at: updatedAt, version: 1,
}));
await database.buildings.bulkInsert(seed);

// The adapter's own app parses bodies up to 100 kB; pushes of 1,000 documents need more.
const app = express();
app.use(express.json({ limit: '10mb' }));
const server = await createRxServer({
  database,
  adapter: RxServerAdapterExpress,
  serverApp: app,
  port: Number(port),
  hostname: '127.0.0.1',
  // A shared secret: the yardstick checks a header, no users, roles or scopes.
  authHandler(headers) {
    if (headers.authorization !== `Bearer ${token}`) throw new Error('unauthorized');
    return { data: {}, validUntil: Date.now() + 3_600_000 };
  },
});
server.addReplicationEndpoint({ name: 'buildings', collection: database.buildings });
await server.start();
console.log(`ready http://127.0.0.1:${port}/buildings/0`);
