// Two WatermelonDB clients of one organization edit offline, sync, and converge to
// the server's state; then both edit the same record and WatermelonDB's rule decides
// (on a pull, the columns a client changed locally win; the rest take the server's).
import assert from 'node:assert/strict'

import { converge, device, finish } from './support.mjs'

const MANAGER = process.env.MANAGER_TOKEN
const ADMIN = process.env.ADMIN_TOKEN
const a = device('tablet A (manager)', MANAGER)
const b = device('tablet B (admin)', ADMIN)
const both = [
  [a, MANAGER],
  [b, ADMIN],
]

await a.sync()
await b.sync()

// A creates two buildings offline, then syncs; the server adds their workflows.
const alpha = await a.create('buildings', { name: 'Alpha', city: 'Basel', floors: 2 })
const beta = await a.create('buildings', { name: 'Beta' })
await a.sync()
let state
const workflowOf = (id, s = state) => Object.entries(s.workflows).find(([, w]) => w.building_id === id)
const stepsOf = (s, id) => Object.values(s.workflow_steps).filter((step) => step.workflow_id === id)
await converge(both, (s) => {
  state = s
  const workflow = workflowOf(alpha.id)
  return Boolean(workflow && workflowOf(beta.id) && stepsOf(s, workflow[0]).length > 0)
})
state = await b.state()
assert.equal(state.buildings[alpha.id].name, 'Alpha')
const [alphaWorkflow] = workflowOf(alpha.id)
const [step] = Object.entries(state.workflow_steps).find(([, s]) => s.workflow_id === alphaWorkflow)

// Offline on both: A changes Alpha; B deletes Beta, creates Gamma and ticks a step.
await a.update('buildings', alpha.id, { city: 'Zurich' })
await b.remove('buildings', beta.id)
const gamma = await b.create('buildings', { name: 'Gamma', notes: 'new' })
await b.update('workflow_steps', step, { done: true, value: 'ok' })
await a.sync()
await b.sync()
// The server retires Beta's workflow and adds Gamma's a moment later.
await converge(both, (s) => !workflowOf(beta.id, s) && Boolean(workflowOf(gamma.id, s)))
state = await a.state()
assert.equal(state.buildings[alpha.id].city, 'Zurich')
assert.equal(state.buildings[beta.id], undefined)
assert.equal(workflowOf(beta.id), undefined, "Beta's workflow went with it")
assert.equal(state.buildings[gamma.id].name, 'Gamma')
assert.equal(state.workflow_steps[step].done, true)
assert.equal(state.workflow_steps[step].value, 'ok')

// The same record edited on both, offline: A syncs first, then B.
await a.update('buildings', alpha.id, { notes: 'from A', city: 'Bern' })
await b.update('buildings', alpha.id, { name: 'Alpha B', city: 'Geneva' })
await a.sync()
await b.sync() // pulls A's edit: B keeps its own name and city, takes A's notes; pushes
await converge(both)
const merged = (await a.state()).buildings[alpha.id]
assert.deepEqual([merged.name, merged.city, merged.notes], ['Alpha B', 'Geneva', 'from A'])
assert.deepEqual(await a.state(), await b.state())

finish({ alpha: alpha.id, beta: beta.id, gamma: gamma.id, step })
