// A WatermelonDB push refused with 409, then resolved. `synchronize()` pulls first and
// pushes second, so the office edits records through the api between the tablet's pull
// and its push: the push is refused whole and applies nothing, the tablet keeps its
// edits, and its next `synchronize()` pulls, merges (the columns it changed locally win,
// the others take the server's) and pushes again, after which both hold the same records.
import assert from 'node:assert/strict'

import { SyncError } from './client.mjs'
import { api, converge, device, eventually, finish, serverState } from './support.mjs'
import { watchSync } from './traffic.mjs'

const ADMIN = process.env.ADMIN_TOKEN
const MANAGER = process.env.MANAGER_TOKEN
const STEPS_PER_WORKFLOW = Number(process.env.STEPS_PER_WORKFLOW)
const traffic = watchSync()
const tablet = device('tablet (admin)', ADMIN)

const workflowOf = (state, buildingId) =>
  Object.keys(state.workflows).find((id) => state.workflows[id].building_id === buildingId)
const stepsOf = (state, buildingId) =>
  Object.entries(state.workflow_steps).filter(
    ([, step]) => step.workflow_id === workflowOf(state, buildingId),
  )

await tablet.sync()
const alpha = await tablet.create('buildings', { name: 'Alpha', city: 'Bern', floors: 2 })
const beta = await tablet.create('buildings', { name: 'Beta', floors: 3 })
const gamma = await tablet.create('buildings', { name: 'Gamma' })
await tablet.sync()
// The server adds each building's workflow and steps a moment later. Once the tablet
// holds all of them nothing changes on the server but what this program does, so every
// step below has one outcome.
await converge([[tablet, ADMIN]], (s) =>
  [alpha, beta, gamma].every((b) => stepsOf(s, b.id).length === STEPS_PER_WORKFLOW),
)
let state = await tablet.state()
const workflow = workflowOf(state, gamma.id)
const [[step]] = stepsOf(state, gamma.id).sort(([, a], [, b]) => a.position - b.position)
const synced = traffic.pushes.length

// Offline on the tablet: Alpha's notes (the office will change its city), Beta's name
// (the office will change its name too, and its floors), Gamma and one of its steps (the
// office leaves them alone: they show that a refused push applies nothing at all).
await tablet.update('buildings', alpha.id, { notes: 'gate code 4411' })
await tablet.update('buildings', beta.id, { name: 'Beta (tablet)' })
await tablet.update('buildings', gamma.id, { floors: 4 })
await tablet.update('workflow_steps', step, { done: true, value: '12.5 bar' })

let serverBefore
traffic.beforeNextPush = async () => {
  await api('PATCH', `/api/v1/buildings/${alpha.id}`, MANAGER, { city: 'Basel' })
  await api('PATCH', `/api/v1/buildings/${beta.id}`, MANAGER, { name: 'Beta (office)', floors: 9 })
  // The sync service checks a push against its replica of the records. Waiting until
  // the replica has the office's edits makes this push meet the up-front check (refused
  // whole) rather than a compare-and-set at the owner that the edits win a moment later.
  await eventually(async () => {
    const server = await serverState(ADMIN)
    return server.buildings[alpha.id].city === 'Basel' && server.buildings[beta.id].floors === 9
  })
  serverBefore = await serverState(ADMIN)
}
await assert.rejects(tablet.sync(), (error) => error instanceof SyncError && error.status === 409)
assert.equal(traffic.beforeNextPush, null, 'the office edited between pull and push')
const refused = traffic.pushes[synced]
// The push carried the timestamp of the pull just before it, which the office's edits
// came after.
assert.equal(refused.lastPulledAt, traffic.pulls.at(-1).timestamp)
assert.equal(refused.records, 4)
assert.equal(refused.status, 409)
assert.match(refused.contentType, /^application\/problem\+json/)
assert.equal(refused.body.type, 'urn:fieldsync:problem:conflict')
assert.deepEqual(
  refused.body.changed.map(({ table, id }) => `${table}/${id}`).sort(),
  [`buildings/${alpha.id}`, `buildings/${beta.id}`].sort(),
)

// Nothing of the push was applied: not at the owners (read directly through the api)...
const building = (id) => api('GET', `/api/v1/buildings/${id}`, ADMIN)
const stepAtOwner = async () =>
  (await api('GET', `/api/v1/workflows/${workflow}/steps`, ADMIN)).items.find((s) => s.id === step)
const [alphaNow, betaNow, gammaNow, stepNow] = await Promise.all([
  building(alpha.id),
  building(beta.id),
  building(gamma.id),
  stepAtOwner(),
])
assert.deepEqual([alphaNow.city, alphaNow.notes], ['Basel', null])
assert.deepEqual([betaNow.name, betaNow.floors], ['Beta (office)', 9])
assert.equal(gammaNow.floors, null)
assert.deepEqual([stepNow.done, stepNow.value], [false, null])
// ...nor in what pulls serve.
assert.deepEqual(await serverState(ADMIN), serverBefore)
// The tablet still has its edits, waiting for the next sync.
state = await tablet.state()
assert.equal(state.buildings[alpha.id].notes, 'gate code 4411')
assert.equal(state.buildings[beta.id].name, 'Beta (tablet)')
assert.equal(state.buildings[gamma.id].floors, 4)
assert.equal(state.workflow_steps[step].value, '12.5 bar')

// The next sync pulls the office's edits, merges them and pushes: accepted.
await tablet.sync()
const accepted = traffic.pushes[synced + 1]
assert.equal(accepted.status, 200)
assert.ok(accepted.lastPulledAt > refused.lastPulledAt)
assert.equal(traffic.pushes.length, synced + 2)
state = await tablet.state()
// WatermelonDB's merge: Alpha takes the office's city and keeps its notes; Beta keeps
// its own name and takes the office's floors.
assert.deepEqual(
  [state.buildings[alpha.id].city, state.buildings[alpha.id].notes],
  ['Basel', 'gate code 4411'],
)
assert.deepEqual(
  [state.buildings[beta.id].name, state.buildings[beta.id].floors],
  ['Beta (tablet)', 9],
)

// The push answered once pulls see it: one more sync brings the server's new versions
// of the pushed records, and the tablet holds exactly what the server holds.
await tablet.sync()
assert.equal(traffic.pushes.length, synced + 2, 'nothing left to push')
assert.deepEqual(await tablet.state(), await serverState(ADMIN))

finish({
  alpha: alpha.id,
  beta: beta.id,
  gamma: gamma.id,
  workflow,
  step,
  pushes: traffic.pushes.slice(synced).map(({ status, lastPulledAt, records }) => ({
    status,
    lastPulledAt,
    records,
  })),
})
