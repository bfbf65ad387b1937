// A client on pullStream receives another client's changes without pulling itself.
// Prints each change's latency: from the write on the writer's device to the document
// appearing in the listener's collection (the writer's push, the server's ingestion
// and the stream event together).
import { randomUUID } from 'node:crypto';
import { device, finish } from './harness.mjs';

const CHANGES = 5;
const WAIT_MS = 10_000;
const listener = await device('listener', process.env.ADMIN_TOKEN);
const writer = await device('writer', process.env.MANAGER_TOKEN);
await listener.online();
await writer.online();
await listener.replications.get('buildings').streamOpen;

function arrival(id, name) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not arrive`)), WAIT_MS);
    const subscription = listener.database.buildings.findOne(id).$.subscribe((doc) => {
      if (doc?.name === name) {
        clearTimeout(timer);
        subscription.unsubscribe();
        resolve(performance.now());
      }
    });
  });
}

const latencies = [];
for (let n = 0; n < CHANGES; n++) {
  const id = randomUUID();
  const arrived = arrival(id, `Streamed ${n}`);
  const written = performance.now();
  await writer.database.buildings.insert({ id, name: `Streamed ${n}` });
  latencies.push((await arrived) - written);
}
// An update travels the same way.
const id = (await writer.database.buildings.find().exec())[0].id;
const renamed = arrival(id, 'Renamed');
const written = performance.now();
await (await writer.database.buildings.findOne(id).exec()).incrementalPatch({ name: 'Renamed' });
latencies.push((await renamed) - written);
await listener.offline();
await writer.offline();
finish({ latencies_ms: latencies.map((ms) => Math.round(ms * 10) / 10), errors: [...listener.errors, ...writer.errors] });
