// RxDB collections replicating with fieldsync: the client setup docs/sync-protocol.md
// shows, used as-is by the tests (tests/clients/test_rxdb.py).
import { createRxDatabase } from 'rxdb';
import { getRxStorageMemory } from 'rxdb/plugins/storage-memory';
import { replicateRxCollection } from 'rxdb/plugins/replication';
import { Subject } from 'rxjs';
import { EventSource } from 'eventsource';

const text = { type: ['string', 'null'] };
const number = { type: ['number', 'null'] };
const integer = { type: ['integer', 'null'] };
const id = { type: 'string', maxLength: 36 };

// fieldsync's collections, schema version 0. `version` and `updated_at` are set by the
// server; a new document leaves them out.
export const schemas = {
  buildings: {
    version: 0,
    primaryKey: 'id',
    type: 'object',
    properties: {
      id, name: { type: 'string' }, address: text, city: text, country: text,
      latitude: number, longitude: number, floors: integer, notes: text,
      updated_at: text, version: integer,
    },
    required: ['id', 'name'],
  },
  workflows: {
    version: 0,
    primaryKey: 'id',
    type: 'object',
    properties: {
      id, building_id: id, name: { type: 'string' }, status: text, assignee_id: text,
      due_date: text, updated_at: text, version: integer,
    },
    required: ['id', 'building_id', 'name'],
  },
  workflow_steps: {
    version: 0,
    primaryKey: 'id',
    type: 'object',
    properties: {
      id, workflow_id: id, title: { type: 'string' }, position: integer,
      done: { type: ['boolean', 'null'] }, value: text, updated_at: text, version: integer,
    },
    required: ['id', 'workflow_id', 'title'],
  },
};

// A database with the given fieldsync collections, in memory.
export async function openDatabase(name, collections = Object.keys(schemas)) {
  const database = await createRxDatabase({ name, storage: getRxStorageMemory() });
  await database.addCollections(
    Object.fromEntries(collections.map((c) => [c, { schema: schemas[c] }])),
  );
  return database;
}

// Replicate one collection with fieldsync. `getToken()` returns a current access token.
export function replicateFieldsync({ collection, baseUrl, getToken, batchSize = 100, live = true }) {
  const endpoint =
    `${baseUrl}/api/v1/sync/rxdb/${collection.name}/${collection.schema.version}`;

  async function request(method, url, body) {
    const response = await fetch(url, {
      method,
      headers: { Authorization: `Bearer ${getToken()}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) {
      // 401: refresh the token (RxDB retries); 426: migrate the local schema;
      // 403/422: the problem's `rejected` lists the refused rows.
      throw new Error(`${method} ${url}: ${response.status} ${await response.text()}`);
    }
    return response.json();
  }

  // pull.stream$: the server's Server-Sent Events, and RESYNC whenever the stream broke.
  const stream$ = new Subject();
  let events = null;
  if (live) {
    const url = `${endpoint}/pullStream?access_token=${encodeURIComponent(getToken())}`;
    events = new EventSource(url);
    events.onmessage = (event) => stream$.next(JSON.parse(event.data));
    events.onerror = () => stream$.next('RESYNC');
  }

  const replication = replicateRxCollection({
    collection,
    replicationIdentifier: `fieldsync:${baseUrl}:${collection.name}`,
    live,
    retryTime: 1000,
    pull: {
      batchSize,
      async handler(checkpoint, size) {
        const query = new URLSearchParams({
          lwt: String(checkpoint?.lwt ?? 0),
          id: checkpoint?.id ?? '',
          limit: String(size),
        });
        // Present while a replication from scratch catches up: send it back.
        if (checkpoint?.since !== undefined) query.set('since', String(checkpoint.since));
        return request('GET', `${endpoint}/pull?${query}`);
      },
      stream$: stream$.asObservable(),
    },
    push: {
      batchSize,
      async handler(rows) {
        return request('POST', `${endpoint}/push`, rows);
      },
    },
  });
  // Resolves once the stream listens (its first message): later changes arrive on it.
  replication.streamOpen = new Promise((resolve) => {
    events?.addEventListener('message', resolve, { once: true });
  });
  const cancel = replication.cancel.bind(replication);
  replication.cancel = async () => {
    events?.close();
    return cancel();
  };
  return replication;
}
