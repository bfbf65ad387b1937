// Test support: what a client's `synchronize()` sent and got back, seen from outside the
// copyable setup. client.mjs calls the global `fetch`; wrapping it lets a program record
// every WatermelonDB pull and push (and act just before a push leaves) while it runs
// client.mjs exactly as docs/sync-protocol.md shows it.
const SYNC_PATH = '/api/v1/sync/watermelon'

function changeCount(changes) {
  let total = 0
  for (const table of Object.values(changes ?? {})) {
    for (const kind of ['created', 'updated', 'deleted']) total += table[kind]?.length ?? 0
  }
  return total
}

async function bodyOf(response) {
  // A clone: client.mjs still reads the original response.
  const text = await response.clone().text()
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

// Start recording. Returns `{pulls, pushes, beforeNextPush}`: `pulls` and `pushes` fill
// in as the client syncs; set `beforeNextPush` to an async function of
// `{lastPulledAt, changes}` to run it once, after the client's pull and before its push
// is sent (its own requests to other endpoints pass through unrecorded).
export function watchSync() {
  const send = globalThis.fetch
  const traffic = { pulls: [], pushes: [], beforeNextPush: null }
  globalThis.fetch = async (input, init = {}) => {
    const url = new URL(String(input))
    if (url.pathname !== SYNC_PATH) return send(input, init)
    const lastPulledAt = url.searchParams.get('last_pulled_at')
    if ((init.method ?? 'GET') === 'POST') {
      const changes = JSON.parse(init.body)
      const hook = traffic.beforeNextPush
      if (hook) {
        traffic.beforeNextPush = null
        await hook({ lastPulledAt: Number(lastPulledAt), changes })
      }
      const response = await send(input, init)
      traffic.pushes.push({
        lastPulledAt: Number(lastPulledAt),
        records: changeCount(changes),
        status: response.status,
        contentType: response.headers.get('content-type'),
        body: await bodyOf(response),
      })
      return response
    }
    const response = await send(input, init)
    const body = await bodyOf(response)
    traffic.pulls.push({
      lastPulledAt,
      status: response.status,
      changes: response.ok ? changeCount(body.changes) : null,
      timestamp: response.ok ? body.timestamp : null,
      hasMore: response.ok ? body.has_more : null,
    })
    return response
  }
  return traffic
}
