// The pod runner runs what a StatefulSet specifies, the way a kubelet would.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { AppsV1Api, CoreV1Api, RbacAuthorizationV1Api, type V1StatefulSet } from "@kubernetes/client-node";
import { attachSandbox } from "../helpers/sandbox.ts";
import { PodRunner } from "../../src/sandbox/pod-runner.ts";
import { projectImageMap } from "../../src/sandbox/images.ts";
import { waitFor } from "../../src/shared/clock.ts";

const sandbox = await attachSandbox();
const kc = sandbox.kubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const apps = kc.makeApiClient(AppsV1Api);
const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
const namespace = `pods-${Date.now()}`;
const runner = new PodRunner(sandbox, { images: projectImageMap({ "tailnet-operator-test/pod-probe": "test/fixtures/pod-probe.ts" }), intervalMs: 200, log: (message) => process.stderr.write(`${message}\n`) });

function probeStatefulSet(name: string, image: string, greetingEnv = "GREETING"): V1StatefulSet {
  return {
    metadata: { name, namespace },
    spec: {
      serviceName: name,
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          serviceAccountName: "probe",
          containers: [
            {
              name: "probe",
              image,
              env: [
                { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
                { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
                { name: greetingEnv, valueFrom: { secretKeyRef: { name: "probe-secret", key: "greeting" } } },
                { name: "COMBINED", value: `$(POD_NAME)/$(${greetingEnv})` },
              ],
              volumeMounts: [{ name: "secret", mountPath: "/etc/probe-secret", readOnly: true }],
            },
          ],
          volumes: [{ name: "secret", secret: { secretName: "probe-secret" } }],
        },
      },
    },
  };
}

async function probeReport(name: string, uid?: string): Promise<Record<string, unknown>> {
  return waitFor(
    `${name}'s probe report`,
    async () => {
      const pod = runner.pod(namespace, name);
      if (!pod || (uid && pod.uid === uid)) return undefined;
      const line = (await readFile(pod.logFile("probe"), "utf8").catch(() => "")).split("\n").find((l) => l.startsWith("PROBE "));
      return line ? (JSON.parse(line.slice(6)) as Record<string, unknown>) : undefined;
    },
    { timeoutMs: 20_000 },
  );
}

before(async () => {
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: "probe" } } });
  await core.createNamespacedSecret({ namespace, body: { metadata: { name: "probe-secret" }, stringData: { greeting: "hello-from-secret" } } });
  await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: "probe-allowed" }, data: { x: "1" } } });
  await rbac.createNamespacedRole({
    namespace,
    body: { metadata: { name: "probe" }, rules: [{ apiGroups: [""], resources: ["configmaps"], resourceNames: ["probe-allowed"], verbs: ["get"] }] },
  });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name: "probe" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "probe" },
      subjects: [{ kind: "ServiceAccount", name: "probe", namespace }],
    },
  });
  runner.start();
});

after(async () => {
  await runner.stop();
  await core.deleteNamespace({ name: namespace });
});

describe("pod runner", () => {
  it("runs a StatefulSet's pod with its env, Secret volume and its own service-account token", async () => {
    await apps.createNamespacedStatefulSet({ namespace, body: probeStatefulSet("probe", "tailnet-operator-test/pod-probe:v1") });
    const report = await probeReport("probe-0");
    const pod = await core.readNamespacedPod({ name: "probe-0", namespace });
    assert.equal(pod.status?.phase, "Running");
    assert.match(pod.status.podIP ?? "", /^10\.77\./);
    assert.equal(pod.metadata?.ownerReferences?.[0]?.kind, "StatefulSet");
    assert.deepEqual(report, {
      secretFile: "hello-from-secret",
      env: { POD_NAME: "probe-0", POD_IP: pod.status.podIP, GREETING: "hello-from-secret", COMBINED: "probe-0/hello-from-secret" },
      namespace,
      allowedStatus: 200,
      forbiddenStatus: 403,
    });
    const sts = await waitFor("StatefulSet status", async () => {
      const read = await apps.readNamespacedStatefulSet({ name: "probe", namespace });
      return read.status?.readyReplicas === 1 ? read : undefined;
    }, { timeoutMs: 5_000 });
    assert.equal(sts.status?.replicas, 1);
  });

  it("restarts the pod when the template changes, and stops it when the StatefulSet goes", async () => {
    const before = runner.pod(namespace, "probe-0");
    assert.ok(before);
    await apps.replaceNamespacedStatefulSet({ name: "probe", namespace, body: { ...(await apps.readNamespacedStatefulSet({ name: "probe", namespace })), spec: probeStatefulSet("probe", "tailnet-operator-test/pod-probe:v2", "GREETING2").spec! } });
    const report = await probeReport("probe-0", before.uid);
    assert.equal((report["env"] as Record<string, string>)["COMBINED"], "probe-0/hello-from-secret");
    const restarted = runner.pod(namespace, "probe-0");
    assert.notEqual(restarted?.uid, before.uid);

    await apps.deleteNamespacedStatefulSet({ name: "probe", namespace });
    await waitFor("the pod to stop", () => (runner.pod(namespace, "probe-0") ? undefined : true), { timeoutMs: 15_000 });
    await waitFor("the Pod object to go", async () => ((await core.listNamespacedPod({ namespace })).items.length === 0 ? true : undefined), { timeoutMs: 5_000 });
    const namespaces = (await sandbox.runner.run(["ip", "netns", "list"])).stdout;
    assert.ok(restarted?.networkNamespace && !namespaces.includes(restarted.networkNamespace), "the pod's namespace is gone");
  });

  it("refuses, with a clear error, an image it cannot map to this project's programs", async () => {
    await apps.createNamespacedStatefulSet({ namespace, body: probeStatefulSet("web", "nginx:1.20-alpine") });
    const failure = await waitFor("the runner to refuse the pod", () => runner.failure(namespace, "web-0"), { timeoutMs: 10_000 });
    assert.match(failure, /image "nginx:1.20-alpine" has no stand-in/);
    assert.equal(runner.pod(namespace, "web-0"), undefined);
    await apps.deleteNamespacedStatefulSet({ name: "web", namespace });
  });
});
