// Compile-time checks of the generated payload types: `tsc` fails the build when an expectation
// below stops holding (an @ts-expect-error that is not needed any more is an error too). Never run.

import { Producer, type Job } from "../src/index.js";

export async function payloadTypes(producer: Producer): Promise<void> {
  const id = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
  await producer.enqueue("messages.deliver", { message_id: id }, { key: id });
  await producer.enqueue("fleet.noop");
  await producer.enqueue("telemetry.purge", { policy: null });
  await producer.enqueue("telemetry.purge", {}, { deferBy: 5 });

  // @ts-expect-error a payload with a required field cannot be left out
  await producer.enqueue("messages.deliver");
  // @ts-expect-error the field is message_id
  await producer.enqueue("messages.deliver", { id });
  // @ts-expect-error no such job
  await producer.enqueue("messages.send", {});
  // @ts-expect-error ms is a number
  await producer.enqueue("fleet.sleep", { ms: "5" });
  // @ts-expect-error a sweep takes no fields
  await producer.enqueue("fleet.noop", { x: 1 });

  const jobs: Job[] = [
    { name: "waitlist.offer_next", payload: { service_id: id } },
    { name: "fleet.noop", key: "k" },
    // @ts-expect-error waitlist.offer_next needs its payload
    { name: "waitlist.offer_next" },
  ];
  await producer.enqueueMany(jobs);
}
