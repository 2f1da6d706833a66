// stopOperator: scales the operator's Deployment to zero and waits only for the Deployment's
// pods, never for the uninstall hook's own pod (which carries the same app labels).
import { it } from "node:test";
import assert from "node:assert/strict";
import type { V1Deployment, V1Pod } from "@kubernetes/client-node";
import { FakeKubeClient } from "../../test/fakes/fake-kube-client.ts";
import { createLogger } from "../shared/log.ts";
import { stopOperator } from "./uninstall.ts";

const labels = { "app.kubernetes.io/name": "tailnet-operator", "app.kubernetes.io/instance": "tailnet-operator" };
const log = createLogger({ name: "test", level: "silent" });

it("scales the Deployment to zero and waits for its pods, not for the hook's own pod", async () => {
  const kube = new FakeKubeClient();
  kube.seed<V1Deployment>({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "tailnet-operator", namespace: "tailscale" },
    spec: { replicas: 2, selector: { matchLabels: labels }, template: {} },
  });
  const pod = (name: string, owner: string): V1Pod => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "tailscale", labels, ownerReferences: [{ apiVersion: "apps/v1", kind: owner, name: "x", uid: "u" }] },
  });
  kube.seed(pod("tailnet-operator-abc-1", "ReplicaSet"));
  kube.seed(pod("tailnet-operator-uninstall-xyz", "Job"));
  let sleeps = 0;
  const clock = {
    now: () => 0,
    sleep: async () => {
      sleeps++;
      // The ReplicaSet's pod goes once the Deployment is scaled down.
      await kube.delete({ apiVersion: "v1", kind: "Pod", namespace: "tailscale", name: "tailnet-operator-abc-1" });
    },
  };
  await stopOperator({ kube, namespace: "tailscale", deployment: "tailnet-operator", log, clock, deadlineMs: 10_000 });
  assert.equal(kube.find<V1Deployment>("Deployment", "tailscale", "tailnet-operator")?.spec?.replicas, 0);
  assert.equal(sleeps, 1, "waited for the operator's pod, then stopped waiting although the hook's pod is still there");
});
