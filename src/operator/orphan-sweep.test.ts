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
    metadata: { name, namespace: NS, labels: { [LABELS.managed]: "true", [LABELS.secretType]: "config" }, annotations: { [ANNOTATIONS.proxyIdentity]: identity, ...(keyId ? { [ANNOTATIONS.authKeyId]: keyId } : {}) } },
  };
}

function setup(): { kube: FakeKubeClient; controlPlane: FakeControlPlane; options: Parameters<typeof sweepOrphanKeys>[0] } {
  const kube = new FakeKubeClient();
  const controlPlane = new FakeControlPlane();
  return { kube, controlPlane, options: { controlPlane, kube, namespace: NS, tags: ["tag:k8s"], description: "tailnet-operator proxy", log } };
}

describe("sweepOrphanKeys", () => {
  it("revokes a usable single-use key with configured tags that no Secret names, and nothing else", async () => {
    const { kube, controlPlane, options } = setup();
    const held = await controlPlane.createAuthKey({ tags: ["tag:k8s"] });
    const orphan = await controlPlane.createAuthKey({ tags: ["tag:k8s"] });
    const customHeld = await controlPlane.createAuthKey({ tags: ["tag:web"] });
    await controlPlane.createAuthKey({ tags: ["tag:web"] });
    kube.seed(configSecret("ts-a-config", held.id, "a tag:k8s"));
    kube.seed(configSecret("ts-b-config", customHeld.id, "b tag:web"));
    const key = { createdAt: 0, usable: true, reusable: false, ephemeral: false };
    controlPlane.foreignKeys.push(
      { ...key, id: "laptop", tags: [] },
      { ...key, id: "other-team", tags: ["tag:db"] },
      { ...key, id: "mixed", tags: ["tag:k8s", "tag:db"] },
      { ...key, id: "spent", tags: ["tag:k8s"], usable: false },
      { ...key, id: "node-bootstrap", tags: ["tag:k8s"], reusable: true },
      { ...key, id: "ephemeral-ci", tags: ["tag:k8s"], ephemeral: true },
      { ...key, id: "terraform", tags: ["tag:k8s"], description: "made by terraform" },
      { ...key, id: "ours-on-tailscale", tags: ["tag:k8s"], description: "tailnet-operator proxy" },
      { ...key, id: "unknown-age", tags: ["tag:k8s"], createdAt: Number.POSITIVE_INFINITY },
    );

    const revoked = await sweepOrphanKeys(options, Number.POSITIVE_INFINITY);

    // tag:web is a live proxy's, but only configured tags are in scope: an annotation cannot widen it.
    assert.deepEqual(revoked.sort(), [orphan.id, "ours-on-tailscale"].sort());
    assert.deepEqual(controlPlane.revoked.sort(), [orphan.id, "ours-on-tailscale"].sort());
  });

  it("a key that cannot be revoked is skipped, the others still go", async () => {
    const { controlPlane, options } = setup();
    const first = await controlPlane.createAuthKey({ tags: ["tag:k8s"] });
    const second = await controlPlane.createAuthKey({ tags: ["tag:k8s"] });
    const revoke = controlPlane.revokeAuthKey.bind(controlPlane);
    controlPlane.revokeAuthKey = (id) => (id === first.id ? Promise.reject(new Error("HTTP 403")) : revoke(id));
    assert.deepEqual(await sweepOrphanKeys(options, Number.POSITIVE_INFINITY), [second.id]);
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
    const sweeper = new OrphanSweeper({ ...options, kube, clock, exclusive: true, onRevoked: (n) => counts.push(n) });

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

  it("without leader election the first sweep keeps the grace period (a rollout overlaps the old pod)", async () => {
    const { kube, controlPlane, options } = setup();
    const clock = new FakeClock(10 * SWEEP_INTERVAL_MS);
    controlPlane.now = () => clock.now();
    const fresh = await controlPlane.createAuthKey({ tags: ["tag:k8s"] });
    await new OrphanSweeper({ ...options, kube, clock, exclusive: false }).initial();
    assert.ok(!controlPlane.revoked.includes(fresh.id));
  });

  it("a control plane that fails does not stop the operator; the next interval tries again", async () => {
    const { kube, controlPlane, options } = setup();
    const clock = new FakeClock(0);
    controlPlane.now = () => clock.now();
    const orphan = await controlPlane.createAuthKey({ tags: ["tag:k8s"] });
    const list = controlPlane.listAuthKeys.bind(controlPlane);
    let down = true;
    controlPlane.listAuthKeys = () => (down ? Promise.reject(new Error("control plane down")) : list());
    const counts: number[] = [];
    const sweeper = new OrphanSweeper({ ...options, kube, controlPlane, clock, exclusive: true, onRevoked: (n) => counts.push(n) });
    await sweeper.initial();
    assert.deepEqual(counts, [], "nothing counted, nothing thrown");
    down = false;
    const stop = new AbortController();
    const running = sweeper.periodic(stop.signal);
    await clock.advance(SWEEP_INTERVAL_MS, 60_000);
    stop.abort();
    await running;
    assert.deepEqual(controlPlane.revoked, [orphan.id]);
    assert.deepEqual(counts, [1]);
  });
});
