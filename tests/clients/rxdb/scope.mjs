// A technician's RxDB clients hold only the buildings assigned to them (with their
// workflows and steps); when the assignment ends, all of it arrives as deletes.
import { baseUrl, device, eventually, finish, serverState } from './harness.mjs';

const admin = process.env.ADMIN_TOKEN;
const technician = process.env.TECHNICIAN_TOKEN;
const collections = ['buildings', 'workflows', 'workflow_steps'];

async function api(method, path, body) {
  const response = await fetch(`${baseUrl}/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  return response.status === 204 ? null : response.json();
}

const assigned = await api('POST', '/buildings', { name: 'Assigned' });
const other = await api('POST', '/buildings', { name: 'Other' });
const assignee = `/buildings/${assigned.id}/assignees/${process.env.TECHNICIAN_ID}`;
await api('PUT', assignee);

// What the technician should get: the building, its workflow and the workflow's steps.
let expected;
await eventually('the workflows service made both default workflows', async () => {
  const workflows = await serverState(admin, 'workflows', ['building_id']);
  const mine = Object.keys(workflows).filter((id) => workflows[id].building_id === assigned.id);
  const steps = await serverState(admin, 'workflow_steps', ['workflow_id']);
  const mySteps = Object.keys(steps).filter((id) => steps[id].workflow_id === mine[0]);
  expected = { buildings: [assigned.id], workflows: mine, steps: mySteps.sort() };
  return Object.keys(workflows).length === 2 && mySteps.length > 0;
});

const devices = [await device('tech-1', technician, collections), await device('tech-2', technician, collections)];
async function holdings(tech) {
  const ids = async (name) => (await tech.database[name].find().exec()).map((d) => d.id).sort();
  return { buildings: await ids('buildings'), workflows: await ids('workflows'), steps: await ids('workflow_steps') };
}

const before = [];
for (const tech of devices) {
  await tech.online();
  await eventually('the assigned building arrived whole', async () => {
    await tech.sync();
    return JSON.stringify(await holdings(tech)) === JSON.stringify(expected);
  });
  before.push(await holdings(tech));
}

await api('DELETE', assignee);
const after = [];
for (const tech of devices) {
  await eventually('the move-out arrived as deletes', async () => {
    await tech.sync();
    const held = await holdings(tech);
    return held.buildings.length + held.workflows.length + held.steps.length === 0;
  });
  // The deletes are RxDB deletes: the documents are gone from queries, kept as tombstones.
  const tombstone = await tech.database.buildings.storageInstance.findDocumentsById([assigned.id], true);
  after.push({ ...(await holdings(tech)), tombstone: tombstone[0]?._deleted === true });
  await tech.offline();
}
finish({ assigned: assigned.id, other: other.id, expected, before, after, errors: devices.flatMap((d) => d.errors) });
