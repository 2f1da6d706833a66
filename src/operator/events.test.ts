import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import type { KubernetesObject } from "@kubernetes/client-node";
import { createLogger } from "../shared/log.ts";
import { FakeKubeClient } from "../../test/fakes/fake-kube-client.ts";
import { KubeEventRecorder } from "./events.ts";

const service: KubernetesObject = { apiVersion: "v1", kind: "Service", metadata: { name: "web", namespace: "default", uid: "u1" } };
const clock = { now: () => 1_790_000_000_123, sleep: () => Promise.resolve() };

function capture(): { log: ReturnType<typeof createLogger>; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { log: createLogger({ name: "test", destination }), lines: () => chunks.join("").split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe("KubeEventRecorder", () => {
  it("gives Events recorded by two replicas in the same millisecond different names (<object>.<hex nanoseconds>)", async () => {
    const kube = new FakeKubeClient();
    const { log } = capture();
    // Two replicas (or a restarted process): separate recorders, same clock reading.
    for (let i = 0; i < 20; i++) await new KubeEventRecorder(kube, log, clock).record(service, "Normal", "ProxyReady", `ready ${i}`);
    const events = kube.ofKind("Event");
    assert.equal(events.length, 20, "none swallowed");
    for (const event of events) {
      const [object, hex] = (event.metadata?.name ?? "").split(".");
      assert.equal(object, "web");
      const nanos = BigInt(`0x${hex ?? ""}`);
      assert.equal(nanos / 1_000_000n, BigInt(clock.now()), "the name encodes the time in nanoseconds");
    }
  });

  it("retries a name collision under a new name, and logs it", async () => {
    const kube = new FakeKubeClient();
    const { log, lines } = capture();
    let collisions = 1;
    const colliding = Object.assign(Object.create(kube) as FakeKubeClient, {
      create: <T extends KubernetesObject>(object: T) => (collisions-- > 0 ? Promise.resolve("exists" as const) : kube.create(object)),
    });
    await new KubeEventRecorder(colliding, log, clock).record(service, "Warning", "ProxyFailed", "boom");
    assert.equal(kube.ofKind("Event").length, 1, "recorded after the collision");
    assert.ok(lines().some((l) => l["msg"] === "event name already taken; retrying under a new name"));
  });
});
