// A WatermelonDB first sync bigger than one pull response. The server stops a pull at its
// cap with `has_more: true`; the copyable setup's `syncFully` synchronizes again while
// it is true, each pull continuing from the last one's timestamp, and the tablet ends
// with exactly the server's records. (pytest lowers the cap and creates the records.)
import assert from 'node:assert/strict'

import { count, device, finish, serverState } from './support.mjs'
import { watchSync } from './traffic.mjs'

const MANAGER = process.env.MANAGER_TOKEN
const traffic = watchSync()
const tablet = device('tablet (manager)', MANAGER)

await tablet.sync()

const { pulls, pushes } = traffic
assert.ok(pulls.every((pull) => pull.status === 200), JSON.stringify(pulls))
// Only the last pull says nothing more waits; each resumes where the one before stopped.
assert.deepEqual(
  pulls.map((pull) => pull.hasMore),
  pulls.map((_, n) => n < pulls.length - 1),
)
assert.deepEqual(
  pulls.map((pull) => pull.lastPulledAt),
  ['null', ...pulls.slice(0, -1).map((pull) => String(pull.timestamp))],
)
assert.equal(pushes.length, 0, 'a fresh tablet has nothing to push')
const state = await tablet.state()
assert.deepEqual(state, await serverState(MANAGER))

finish({
  pulls: pulls.map(({ changes, hasMore }) => ({ changes, hasMore })),
  counts: count(state),
  buildings: Object.keys(state.buildings),
})
