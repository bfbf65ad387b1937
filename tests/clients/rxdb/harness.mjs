// Helpers of the RxDB test programs: clients that go on- and offline, the server's state.
import { openDatabase, replicateFieldsync } from './fieldsync-rxdb.mjs';

export const baseUrl = process.env.BASE_URL;
// Generous: default workflows queue behind every building earlier tests made.
const DEADLINE_MS = 120_000;

// One device: an RxDB database whose collections replicate while it is online.
export async function device(name, token, collections = ['buildings']) {
  const database = await openDatabase(name, collections);
  const replications = new Map();
  const errors = [];
  return {
    database,
    errors,
    replications,
    async online() {
      for (const name of collections) {
        const replication = replicateFieldsync({
          collection: database[name], baseUrl, getToken: () => token,
        });
        replication.error$.subscribe((error) => errors.push(String(error?.message ?? error)));
        replications.set(name, replication);
      }
      await Promise.all([...replications.values()].map((r) => r.awaitInitialReplication()));
    },
    async offline() {
      await Promise.all([...replications.values()].map((r) => r.cancel()));
      replications.clear();
    },
    // Push what is pending, then pull from the checkpoint.
    async sync() {
      for (const replication of replications.values()) {
        await replication.awaitInSync();
        replication.reSync();
        await replication.awaitInSync();
      }
    },
    // Live documents by id: the fields given, from every replicated collection.
    async state(fields = ['name', 'floors', 'version']) {
      const state = {};
      for (const name of collections) {
        for (const doc of await database[name].find().exec()) {
          state[doc.id] = Object.fromEntries(fields.filter((f) => f in doc._data).map((f) => [f, doc.get(f)]));
        }
      }
      return state;
    },
  };
}

// The server's live documents of a collection, as `state` shows them.
export async function serverState(token, collection = 'buildings', fields = ['name', 'floors', 'version']) {
  const state = {};
  let checkpoint = { lwt: 0, id: '' };
  for (;;) {
    const query = new URLSearchParams({ ...checkpoint, limit: '1000' });
    const response = await fetch(`${baseUrl}/api/v1/sync/rxdb/${collection}/0/pull?${query}`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    if (!response.ok) throw new Error(`pull: ${response.status} ${await response.text()}`);
    const page = await response.json();
    if (page.documents.length === 0) return state;
    for (const doc of page.documents) {
      if (doc._deleted) delete state[doc.id];
      else state[doc.id] = Object.fromEntries(fields.filter((f) => f in doc).map((f) => [f, doc[f]]));
    }
    checkpoint = page.checkpoint;
  }
}

// Repeat `attempt` (which syncs and checks) until it returns true; fail after the deadline.
export async function eventually(what, attempt) {
  const deadline = Date.now() + DEADLINE_MS;
  while (!(await attempt())) {
    if (Date.now() > deadline) throw new Error(`not reached within ${DEADLINE_MS} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export function same(a, b) {
  return JSON.stringify(sorted(a)) === JSON.stringify(sorted(b));
}

function sorted(value) {
  if (Array.isArray(value) || value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sorted(value[k])]));
}

// Print the result as the last line (run_node reads it) and exit.
export function finish(result) {
  console.log(JSON.stringify(result));
  process.exit(0);
}
