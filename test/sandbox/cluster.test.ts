// The sandbox runs a real Kubernetes node: kubelet + containerd + kube-proxy + CNI, pods from
// the locally built images, CoreDNS, pod IPs routed from the rest of the sandbox, and a node
// that comes back after its kubelet and containerd are killed.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { AppsV1Api, CoreV1Api, type V1Pod } from "@kubernetes/client-node";
import { attachSandbox } from "../helpers/sandbox.ts";
import { waitFor } from "../../src/shared/clock.ts";
import { readImageIndex, requireImage } from "../../src/sandbox/cluster/image-import.ts";
import { processStartTime } from "../../src/sandbox/cluster/daemon.ts";

const sandbox = await attachSandbox();
const kc = sandbox.kubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const apps = kc.makeApiClient(AppsV1Api);
const images = readImageIndex();
const namespace = `cluster-${String(Date.now())}`;
const node = sandbox.nodes[0]!;

function rssMiB(pid: number): number {
  if (processStartTime(pid) === undefined) return 0;
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${String(pid)}/status`, "utf8"));
  return Number(match?.[1] ?? 0) / 1024;
}

async function podsOf(selector: string): Promise<V1Pod[]> {
  return (await core.listNamespacedPod({ namespace, labelSelector: selector })).items;
}

async function runningPods(selector: string, count: number): Promise<V1Pod[]> {
  return waitFor(
    `${String(count)} running pods ${selector}`,
    async () => {
      const pods = (await podsOf(selector)).filter((pod) => pod.status?.phase === "Running" && pod.status.podIP);
      return pods.length >= count ? pods : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 250 },
  );
}

function pauseDeployment(name: string, replicas: number): Parameters<AppsV1Api["createNamespacedDeployment"]>[0]["body"] {
  const labels = { app: name };
  return {
    metadata: { name, labels },
    spec: {
      replicas,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          containers: [{ name: "pause", image: requireImage(images, "pause").ref, imagePullPolicy: "IfNotPresent" }],
          terminationGracePeriodSeconds: 1,
        },
      },
    },
  };
}

// A pod whose program resolves the API server's Service name through CoreDNS and calls it.
const CLIENT_SCRIPT = `
import { lookup } from "node:dns/promises";
import { readFileSync } from "node:fs";
import { get } from "node:https";
const sa = "/var/run/secrets/kubernetes.io/serviceaccount";
const addresses = (await lookup("kubernetes.default.svc.cluster.local", { all: true })).map((a) => a.address);
const res = await new Promise((resolve, reject) => get({ host: "kubernetes.default.svc", path: "/version", ca: readFileSync(sa + "/ca.crt"),
  headers: { authorization: "Bearer " + readFileSync(sa + "/token", "utf8") } }, resolve).on("error", reject));
let body = ""; for await (const chunk of res) body += chunk;
console.log("RESULT " + JSON.stringify({ addresses, status: res.statusCode, version: JSON.parse(body).gitVersion }));
`;

describe("sandbox cluster", () => {
  before(async () => {
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    // Pods need the namespace's default ServiceAccount, which the controller-manager creates.
    await waitFor("default ServiceAccount", () => core.readNamespacedServiceAccount({ name: "default", namespace }).then(() => true), {
      timeoutMs: 30_000,
    });
  });
  after(() => core.deleteNamespace({ name: namespace }));

  it("has its node Ready, registered with its InternalIP", async () => {
    const registered = await core.readNode({ name: node.name });
    assert.equal(registered.status?.conditions?.find((c) => c.type === "Ready")?.status, "True");
    const internal = registered.status.addresses?.filter((a) => a.type === "InternalIP").map((a) => a.address);
    assert.deepEqual(internal, [node.state.address, node.state.address6]);
    const memory = Object.entries(node.state.daemons).map(([name, record]) => `${name} ${rssMiB(record.pid).toFixed(0)} MiB`);
    process.stderr.write(`[cluster] node ${node.name} RSS: ${memory.join(", ")}\n`);
  });

  it("runs a Deployment's pods with addresses from the node's pod range", async () => {
    await apps.createNamespacedDeployment({ namespace, body: pauseDeployment("pause", 2) });
    const started = Date.now();
    const pods = await runningPods("app=pause", 2);
    process.stderr.write(`[cluster] 2 pause pods Running in ${String(Date.now() - started)} ms\n`);
    // Dual-stack: one address from each of the node's ranges, IPv4 first.
    const [prefix4, prefix6] = node.state.podCidrs.map((cidr) => cidr.replace(/0\/24$|:\/64$/, ""));
    for (const pod of pods) {
      const ips = (pod.status?.podIPs ?? []).map((entry) => entry.ip);
      assert.equal(ips.length, 2, `${pod.metadata?.name ?? ""}: ${ips.join(", ")}`);
      assert.ok(ips[0]?.startsWith(prefix4 ?? "?"), `${ips[0] ?? ""} not in ${node.state.podCidrs.join(" or ")}`);
      assert.ok(ips[1]?.startsWith(prefix6 ?? "?"), `${ips[1] ?? ""} not in ${node.state.podCidrs.join(" or ")}`);
    }
    assert.notEqual(pods[0]?.status?.podIP, pods[1]?.status?.podIP);
  });

  it("lets a pod resolve the kubernetes Service through CoreDNS and call the API server through it", async () => {
    await core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: "client" },
        spec: {
          restartPolicy: "Never",
          containers: [
            {
              name: "client",
              image: requireImage(images, "operator").ref,
              imagePullPolicy: "IfNotPresent",
              command: ["/usr/local/bin/node", "--input-type=module", "-e", CLIENT_SCRIPT],
            },
          ],
        },
      },
    });
    const phase = await waitFor(
      "the client pod to finish",
      async () => {
        const pod = await core.readNamespacedPod({ name: "client", namespace });
        return ["Succeeded", "Failed"].includes(pod.status?.phase ?? "") ? pod.status?.phase : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    // Logs come from the kubelet through the API server (its kubelet client certificate).
    const log = await core.readNamespacedPodLog({ name: "client", namespace });
    assert.equal(phase, "Succeeded", log);
    const line = log.split("\n").find((l) => l.startsWith("RESULT "));
    assert.ok(line, log);
    const result = JSON.parse(line.slice("RESULT ".length)) as { addresses: string[]; status: number; version: string };
    assert.deepEqual(result.addresses, ["10.96.0.1"]);
    assert.equal(result.status, 200);
    assert.match(result.version, /^v1\./);
  });

  it("routes pod IPs from other sandbox hosts (where tailnet devices live) through the hub", async () => {
    const [dns] = (await core.listNamespacedPod({ namespace: "kube-system", labelSelector: "k8s-app=kube-dns" })).items;
    const ip = dns?.status?.podIP;
    assert.ok(ip);
    const peer = await sandbox.network.addHost("peer");
    try {
      const { stdout } = await sandbox.runner.run(peer.namespace.exec(["curl", "-sS", "--max-time", "5", `http://${ip}:8181/ready`]));
      assert.equal(stdout.trim(), "OK");
    } finally {
      await sandbox.network.removeHost(peer);
    }
  });

  it("comes back Ready after its kubelet and containerd are killed; running pods keep running", async () => {
    const before = (await runningPods("app=pause", 2)).map((pod) => pod.status?.containerStatuses?.[0]?.containerID).sort();
    const started = Date.now();
    await sandbox.restartNode(node.name);
    process.stderr.write(`[cluster] node ${node.name} Ready again ${String(Date.now() - started)} ms after the restart began\n`);
    const after = (await runningPods("app=pause", 2)).map((pod) => pod.status?.containerStatuses?.[0]?.containerID).sort();
    assert.deepEqual(after, before);
    // And it still starts new pods.
    await apps.createNamespacedDeployment({ namespace, body: pauseDeployment("after-restart", 1) });
    await runningPods("app=after-restart", 1);
  });
});
