import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { V1Secret } from "@kubernetes/client-node";
import { FakeKubeClient } from "../../test/fakes/fake-kube-client.ts";
import { FakeControlPlane } from "../../test/fakes/fake-control-plane.ts";
import { FakeClock } from "../../test/fakes/fake-clock.ts";
import { createLogger } from "../shared/log.ts";
import { ANNOTATIONS, LABELS } from "./names.ts";
import { OrphanSweeper, SWEEP_GRACE_MS, SWEEP_INTERVAL_MS, sweepOrphanKeys } from "./orphan-sweep.ts";

const log = createLogger({ name: "test", level: "silent" });
const NS = "tailscale";

function configSecret(name: string, keyId: string | undefined, identity: string): V1Secret {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace: NS, labels: { [LABELS.managed]: "true" }, annotations: { [ANNOTATIONS.proxyIdentity]: identity, ...(keyId ? { [ANNOTATIONS.authKeyId]: keyId } : {}) } },
  };
}

function setup(): { kube: FakeKubeClient; controlPlane: FakeControlPlane; options: Parameters<typeof sweepOrphanKeys>[0] } {
  const kube = new FakeKubeClient();
  const controlPlane = new FakeControlPlane();
  return { kube, controlPlane, options: { controlPlane, kube, namespace: NS, defaultTags: ["tag:k8s"], log } };
}

describe("sweepOrphanKeys", () => {
  it("revokes a usable key with the operator's tags that no Secret names, and nothing else", async () => {
    const { kube, controlPlane, options } = setup();
    const held = await controlPlane.createAuthKey({ tags: ["tag:k8s"] });
    const orphan = await controlPlane.createAuthKey({ tags: ["tag:k8s"] });
    const customHeld = await controlPlane.createAuthKey({ tags: ["tag:web"] });
    const customOrphan = await controlPlane.createAuthKey({ tags: ["tag:web"] });
    kube.seed(configSecret("ts-a-config", held.id, "a tag:k8s"));
    kube.seed(configSecret("ts-b-config", customHeld.id, "b tag:web"));
    controlPlane.foreignKeys.push(
      { id: "laptop", tags: [], createdAt: 0, usable: true },
      { id: "other-team", tags: ["tag:db"], createdAt: 0, usable: true },
      { id: "mixed", tags: ["tag:k8s", "tag:db"], createdAt: 0, usable: true },
      { id: "spent", tags: ["tag:k8s"], createdAt: 0, usable: false },
    );

    const revoked = await sweepOrphanKeys(options, Number.POSITIVE_INFINITY);

    // tag:web counts as the operator's because a live proxy carries it.
    assert.deepEqual(revoked.sort(), [orphan.id, customOrphan.id].sort());
    assert.deepEqual(controlPlane.revoked.sort(), [orphan.id, customOrphan.id].sort());
  });

  it("leaves keys created at or after the cut-off alone (a Secret may be a moment away)", async () => {
    const { controlPlane, options } = setup();
    controlPlane.now = () => 1_000;
    await controlPlane.createAuthKey({ tags: ["tag:k8s"] });
    assert.deepEqual(await sweepOrphanKeys(options, 1_000), []);
    assert.equal((await sweepOrphanKeys(options, 1_001)).length, 1);
  });
});

describe("OrphanSweeper", () => {
  it("sweeps everything before the workers start, then keys older than the grace period each interval", async () => {
    const { kube, controlPlane, options } = setup();
    const clock = new FakeClock(10 * SWEEP_INTERVAL_MS);
    controlPlane.now = () => clock.now();
    const counts: number[] = [];
    const sweeper = new OrphanSweeper({ ...options, kube, clock, onRevoked: (n) => counts.push(n) });

    const before = await controlPlane.createAuthKey({ tags: ["tag:k8s"] });
    await sweeper.initial();
    assert.deepEqual(controlPlane.revoked, [before.id], "the predecessor's orphan goes at once, whatever its age");

    const stop = new AbortController();
    const running = sweeper.periodic(stop.signal);
    const young = await controlPlane.createAuthKey({ tags: ["tag:k8s"] });
    await clock.advance(SWEEP_INTERVAL_MS - SWEEP_GRACE_MS + 1, 60_000);
    const fresh = await controlPlane.createAuthKey({ tags: ["tag:k8s"] });
    await clock.advance(SWEEP_GRACE_MS - 1, 60_000);
    assert.deepEqual(controlPlane.revoked, [before.id, young.id], "only the key older than the grace period");
    assert.ok(!controlPlane.revoked.includes(fresh.id));
    stop.abort();
    await running;
    assert.deepEqual(counts, [1, 1]);
  });

  it("a control plane that fails does not stop the operator; the next interval tries again", async () => {
    const { kube, controlPlane, options } = setup();
    const clock = new FakeClock(0);
    const failing = { ...controlPlane, listAuthKeys: () => Promise.reject(new Error("control plane down")) } as unknown as FakeControlPlane;
    const counts: number[] = [];
    const sweeper = new OrphanSweeper({ ...options, kube, controlPlane: failing, clock, onRevoked: (n) => counts.push(n) });
    await sweeper.initial();
    assert.deepEqual(counts, [], "nothing counted, nothing thrown");
  });
});
