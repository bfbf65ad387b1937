// A technician's WatermelonDB client holds only the buildings assigned to them (with
// their workflows and steps); when an assignment ends, all of it arrives as deletes.
import assert from 'node:assert/strict'

import { api, converge, device, eventually, finish, serverState } from './support.mjs'

const MANAGER = process.env.MANAGER_TOKEN
const ADMIN = process.env.ADMIN_TOKEN
const TECHNICIAN = process.env.TECHNICIAN_TOKEN
const TECHNICIAN_ID = process.env.TECHNICIAN_ID
const office = device('office (manager)', MANAGER)
const field = device('field tablet (technician)', TECHNICIAN)

const stepsUnder = (state, buildingId) => {
  const workflows = Object.keys(state.workflows).filter(
    (id) => state.workflows[id].building_id === buildingId,
  )
  return Object.entries(state.workflow_steps).filter(([, s]) => workflows.includes(s.workflow_id))
}

await office.sync()
const assigned = await office.create('buildings', { name: 'Assigned' })
const other = await office.create('buildings', { name: 'Not assigned' })
await office.sync()
await converge(
  [[office, MANAGER]],
  (s) => stepsUnder(s, assigned.id).length > 0 && stepsUnder(s, other.id).length > 0,
)

await api('PUT', `/api/v1/buildings/${assigned.id}/assignees/${TECHNICIAN_ID}`, ADMIN)
await field.sync()
await converge([[field, TECHNICIAN]], (s) => stepsUnder(s, assigned.id).length > 0)
let state = await field.state()
assert.deepEqual(Object.keys(state.buildings), [assigned.id])
assert.ok(Object.values(state.workflows).every((w) => w.building_id === assigned.id))
assert.equal(Object.keys(state.workflow_steps).length, stepsUnder(state, assigned.id).length)

// The technician records a result offline; the office sees it after both sync.
const [stepId] = stepsUnder(state, assigned.id)[0]
await field.update('workflow_steps', stepId, { done: true, value: '7 bar' })
await field.sync()
const everyone = [
  [office, MANAGER],
  [field, TECHNICIAN],
]
await converge(everyone, (s) => s.workflow_steps[stepId]?.done === true)
assert.equal((await office.state()).workflow_steps[stepId].value, '7 bar')

// The assignment ends: the building, its workflow and its steps leave the tablet.
await api('DELETE', `/api/v1/buildings/${assigned.id}/assignees/${TECHNICIAN_ID}`, ADMIN)
await eventually(async () => {
  await field.sync()
  state = await field.state()
  return Object.keys(state.buildings).length === 0
})
assert.deepEqual(state, { buildings: {}, workflows: {}, workflow_steps: {} })
assert.deepEqual(state, await serverState(TECHNICIAN))

finish({ assigned: assigned.id, other: other.id, step: stepId })
