// Test support: a client per user, the server's state through the native API, and
// waiting for conditions the server makes true asynchronously (bounded by a deadline).
import assert from 'node:assert/strict'

import { openDatabase, syncFully, SyncError } from './client.mjs'

export const BASE_URL = process.env.BASE_URL
export const TABLES = ['buildings', 'workflows', 'workflow_steps']
// Fields every table's records are compared on (server-set `updated_at` aside).
const FIELDS = {
  buildings: [
    'name', 'address', 'city', 'country', 'latitude', 'longitude', 'floors', 'notes', 'version',
  ],
  workflows: ['building_id', 'name', 'status', 'assignee_id', 'due_date', 'version'],
  workflow_steps: ['workflow_id', 'title', 'position', 'done', 'value', 'version'],
}

export function device(name, token) {
  const database = openDatabase()
  const options = { baseUrl: BASE_URL, getToken: () => token }
  return {
    name,
    database,
    sync: () => syncFully(database, options),
    // A sync whose push may be refused with 409 (it pulls again and retries, as an
    // app's next sync would).
    async syncResolvingConflicts() {
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          return await syncFully(database, options)
        } catch (error) {
          if (!(error instanceof SyncError) || error.status !== 409) throw error
        }
      }
      throw new Error(`${name}: push refused five times`)
    },
    async create(table, fields) {
      return database.write(() =>
        database.get(table).create((record) => {
          for (const [column, value] of Object.entries(fields)) record._setRaw(column, value)
        }),
      )
    },
    async update(table, id, fields) {
      const record = await database.get(table).find(id)
      await database.write(() =>
        record.update(() => {
          for (const [column, value] of Object.entries(fields)) record._setRaw(column, value)
        }),
      )
    },
    async remove(table, id) {
      const record = await database.get(table).find(id)
      await database.write(() => record.markAsDeleted())
    },
    async state() {
      return localState(database)
    },
  }
}

function pick(table, raw) {
  return Object.fromEntries(FIELDS[table].map((field) => [field, raw[field] ?? null]))
}

export async function localState(database) {
  const state = {}
  for (const table of TABLES) {
    const records = await database.get(table).query().fetch()
    state[table] = Object.fromEntries(
      records.map((record) => [record.id, pick(table, record._raw)]).sort(byKey),
    )
  }
  return state
}

function byKey([a], [b]) {
  return a < b ? -1 : a > b ? 1 : 0
}

async function api(method, path, token, body) {
  const response = await fetch(`${BASE_URL}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await response.text()
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`)
  return text ? JSON.parse(text) : null
}
export { api }

// What the server holds in the caller's scope, through the native pull.
export async function serverState(token) {
  const state = Object.fromEntries(TABLES.map((table) => [table, {}]))
  let checkpoint = null
  for (;;) {
    const page = await api('POST', '/api/v1/sync/pull', token, { checkpoint, limit: 1000 })
    for (const change of page.changes) {
      if (change.op === 'delete') delete state[change.collection][change.id]
      else state[change.collection][change.id] = pick(change.collection, change.data)
    }
    checkpoint = page.checkpoint
    if (!page.has_more) break
  }
  for (const table of TABLES) {
    state[table] = Object.fromEntries(Object.entries(state[table]).sort(byKey))
  }
  return state
}

// Poll `condition` until it holds: the server creates workflows for new buildings and
// replicates changes asynchronously, so a client sees them a moment later.
export async function eventually(condition, { timeoutMs = 20000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs
  let last
  for (;;) {
    try {
      last = await condition()
      if (last === true) return
    } catch (error) {
      if (Date.now() > deadline) throw error
      last = error.message
      if (process.env.DEBUG_CLIENTS) console.error('not yet:', error.message)
    }
    if (Date.now() > deadline) throw new Error(`condition not met in ${timeoutMs} ms: ${last}`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

// Sync every device until each one's records equal the server's (in its scope) and
// `until(state of the first device)` holds (the server adds records asynchronously).
export async function converge(devicesWithTokens, until = () => true) {
  await eventually(async () => {
    for (const [device] of devicesWithTokens) await device.syncResolvingConflicts()
    for (const [device, token] of devicesWithTokens) {
      assert.deepEqual(await device.state(), await serverState(token), `${device.name} differs`)
    }
    const [[first]] = devicesWithTokens
    assert.ok(until(await first.state()), 'not there yet')
    return true
  })
}

export function count(state) {
  return Object.fromEntries(TABLES.map((table) => [table, Object.keys(state[table]).length]))
}

// Print the program's result (pytest reads the last stdout line) and exit: LokiJS keeps
// timers running that would hold the process open.
export function finish(result) {
  console.log(JSON.stringify(result))
  process.exit(0)
}
