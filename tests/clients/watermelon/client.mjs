// A WatermelonDB app's database and its sync with fieldsync: the setup
// docs/sync-protocol.md shows. Plain JavaScript models (no Babel decorators): columns are
// read with `_getRaw` and written with `_setRaw` inside `record.update()`.
import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { Database, Model, appSchema, tableSchema } = require('@nozbe/watermelondb')
const LokiJSAdapter = require('@nozbe/watermelondb/adapters/lokijs').default
const { schemaMigrations } = require('@nozbe/watermelondb/Schema/migrations')
const { synchronize } = require('@nozbe/watermelondb/sync')
const { setGenerator } = require('@nozbe/watermelondb/utils/common/randomId')

// fieldsync's record ids are UUIDs: let WatermelonDB create them too.
setGenerator(() => randomUUID())

// The server's fields. Timestamps arrive as milliseconds; the server sets `updated_at`
// and `version` and ignores them (and any local-only column) when they are pushed.
export const schema = appSchema({
  version: 1,
  tables: [
    tableSchema({
      name: 'buildings',
      columns: [
        { name: 'name', type: 'string' },
        { name: 'address', type: 'string', isOptional: true },
        { name: 'city', type: 'string', isOptional: true },
        { name: 'country', type: 'string', isOptional: true },
        { name: 'latitude', type: 'number', isOptional: true },
        { name: 'longitude', type: 'number', isOptional: true },
        { name: 'floors', type: 'number', isOptional: true },
        { name: 'notes', type: 'string', isOptional: true },
        { name: 'updated_at', type: 'number' },
        { name: 'version', type: 'number' },
      ],
    }),
    tableSchema({
      name: 'workflows',
      columns: [
        { name: 'building_id', type: 'string', isIndexed: true },
        { name: 'name', type: 'string' },
        { name: 'status', type: 'string' },
        { name: 'assignee_id', type: 'string', isOptional: true },
        { name: 'due_date', type: 'string', isOptional: true },
        { name: 'updated_at', type: 'number' },
        { name: 'version', type: 'number' },
      ],
    }),
    tableSchema({
      name: 'workflow_steps',
      columns: [
        { name: 'workflow_id', type: 'string', isIndexed: true },
        { name: 'title', type: 'string' },
        { name: 'position', type: 'number' },
        { name: 'done', type: 'boolean' },
        { name: 'value', type: 'string', isOptional: true },
        { name: 'updated_at', type: 'number' },
        { name: 'version', type: 'number' },
      ],
    }),
  ],
})

class Building extends Model {
  static table = 'buildings'
  static associations = { workflows: { type: 'has_many', foreignKey: 'building_id' } }
}

class Workflow extends Model {
  static table = 'workflows'
  static associations = {
    buildings: { type: 'belongs_to', key: 'building_id' },
    workflow_steps: { type: 'has_many', foreignKey: 'workflow_id' },
  }
}

class WorkflowStep extends Model {
  static table = 'workflow_steps'
  static associations = { workflows: { type: 'belongs_to', key: 'workflow_id' } }
}

export function openDatabase() {
  const adapter = new LokiJSAdapter({
    schema,
    // Migration syncs need the adapter to know the schema's migrations.
    migrations: schemaMigrations({ migrations: [] }),
    useWebWorker: false,
    // WatermelonDB 0.28 requires this option and deprecates `false`. Without IndexedDB
    // (Node, these tests) LokiJS keeps the database in memory either way.
    useIncrementalIndexedDB: true,
  })
  return new Database({ adapter, modelClasses: [Building, Workflow, WorkflowStep] })
}

export class SyncError extends Error {
  constructor(response, body) {
    super(`${response.status} ${response.url}: ${body}`)
    this.status = response.status
  }
}

// One `synchronize()` with fieldsync: pull, apply, push. `getToken` returns a current
// access token (refresh it in your app when it expires). Returns whether the server has
// more changes waiting (a huge first sync comes in parts): call it again while true.
export async function syncWithFieldsync(database, { baseUrl, getToken }) {
  const url = `${baseUrl}/api/v1/sync/watermelon`
  const headers = () => ({
    Authorization: `Bearer ${getToken()}`,
    'Content-Type': 'application/json',
  })
  let hasMore = false
  await synchronize({
    database,
    pullChanges: async ({ lastPulledAt, schemaVersion, migration }) => {
      const query = new URLSearchParams({
        last_pulled_at: String(lastPulledAt ?? null),
        schema_version: String(schemaVersion),
        migration: JSON.stringify(migration ?? null),
      })
      const response = await fetch(`${url}?${query}`, { headers: headers() })
      if (!response.ok) throw new SyncError(response, await response.text())
      return response.json() // {changes, timestamp[, experimentalStrategy], has_more}
    },
    onDidPullChanges: ({ has_more }) => {
      hasMore = Boolean(has_more)
    },
    pushChanges: async ({ changes, lastPulledAt }) => {
      const response = await fetch(`${url}?last_pulled_at=${lastPulledAt}`, {
        method: 'POST',
        headers: headers(),
        body: JSON.stringify(changes),
      })
      // 409: the server changed some of these records since the pull; synchronize()
      // throws, the local changes stay, and the next sync pulls first and pushes again.
      if (!response.ok) throw new SyncError(response, await response.text())
    },
    migrationsEnabledAtVersion: 1,
  })
  return hasMore
}

// Synchronize until the server has nothing more for this client.
export async function syncFully(database, options) {
  while (await syncWithFieldsync(database, options)) {
    // a first sync larger than one response: keep going
  }
}
