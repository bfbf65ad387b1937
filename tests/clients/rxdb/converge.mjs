// Two RxDB clients of one organization edit offline and concurrently, sync, and converge.
import { randomUUID } from 'node:crypto';
import { device, eventually, finish, same, serverState } from './harness.mjs';

const admin = process.env.ADMIN_TOKEN;
const a = await device('device-a', admin);
const b = await device('device-b', process.env.MANAGER_TOKEN);
await a.online();
await b.online();

// Both online: A's new buildings reach B.
const [x, y, w] = [randomUUID(), randomUUID(), randomUUID()];
await a.database.buildings.insert({ id: x, name: 'X', floors: 1 });
await a.database.buildings.insert({ id: y, name: 'Y', floors: 1 });
await a.sync();
await eventually('B has X and Y', async () => {
  await b.sync();
  return (await b.database.buildings.findOne(y).exec())?.version === 1;
});

// A offline: update X, delete Y, create W. Meanwhile B renames X (and it is written).
await a.offline();
const xOnA = await a.database.buildings.findOne(x).exec();
await xOnA.incrementalPatch({ floors: 5 });
await (await a.database.buildings.findOne(y).exec()).remove();
await a.database.buildings.insert({ id: w, name: 'W', city: 'Graz' });
await (await b.database.buildings.findOne(x).exec()).incrementalPatch({ name: 'X by B' });
await b.sync();

// A back online: its change of X conflicts; RxDB's default handler takes the server's.
await a.online();
let states;
await eventually('A, B and the server agree', async () => {
  await a.sync();
  await b.sync();
  states = { a: await a.state(), b: await b.state(), server: await serverState(admin) };
  return same(states.a, states.b) && same(states.a, states.server);
});
await a.offline();
await b.offline();
finish({ ...states, ids: { x, y, w }, errors: [...a.errors, ...b.errors] });
