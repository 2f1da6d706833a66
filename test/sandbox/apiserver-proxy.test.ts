// The API server proxy on the real node: the operator installed by Helm with
// apiServerProxy.mode=auth, its proxy pod serving HTTPS (a certificate from a sandbox CA) on the
// tailnet, and kubectl run on tailnet devices (two users' laptops and a tagged CI runner) against
// the real API server with RBAC on. Identities come from Headscale's policy grants
// (src/sandbox/headscale.ts: alice@ is granted group tailnet-readers towards tag:k8s).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { stringify } from "yaml";
import { PatchStrategy, type KubernetesObject, type V1Pod } from "@kubernetes/client-node";
import { attachSandbox } from "../helpers/sandbox.ts";
import { ClusterEnv, NGINX_IMAGE, OPERATOR_NAMESPACE } from "../helpers/cluster-env.ts";
import { installOperator } from "../../src/sandbox/operator-install.ts";
import { resolveKubectl } from "../../src/sandbox/binaries.ts";
import { TAILNET_DOMAIN } from "../../src/sandbox/sandbox.ts";
import type { TailnetDevice } from "../../src/sandbox/tailnet-device.ts";
import { CommandError } from "../../src/shared/exec.ts";
import { waitFor } from "../../src/shared/clock.ts";

const sandbox = await attachSandbox();
const env = new ClusterEnv(sandbox);
const kubectl = resolveKubectl();
const HOSTNAME = "k8s-api";
const FQDN = `${HOSTNAME}.${TAILNET_DOMAIN}`;
const NS = "team-a";
const dir = join(sandbox.run.dir, "apiserver-proxy-test");
const caCert = join(dir, "ca.crt");
let alice: TailnetDevice;
let bob: TailnetDevice;
let ci: TailnetDevice;
const children: ChildProcess[] = [];

const AUTH_VALUES = { replicaCount: 1, apiServerProxy: { mode: "auth", hostname: HOSTNAME, tls: { secretName: "k8s-api-tls" } } };

async function openssl(args: string[]): Promise<void> {
  await sandbox.runner.run(["openssl", ...args]);
}

async function applyObject(object: KubernetesObject): Promise<void> {
  await env.objects.patch(object, undefined, undefined, "apiserver-proxy-test", true, PatchStrategy.ServerSideApply);
}

/** The proxy device's tailnet IPv4 address, once Headscale lists it online. */
async function proxyAddress(): Promise<string> {
  return waitFor(`${HOSTNAME} on the tailnet`, async () => {
    const node = (await sandbox.headscaleAdmin.listNodes()).find((n) => n.given_name === HOSTNAME && n.online);
    return node?.ip_addresses?.find((ip) => !ip.includes(":"));
  }, { timeoutMs: 240_000, intervalMs: 500 });
}

/**
 * A kubeconfig for a tailnet user, as docs/apiserver-proxy.md tells users to write it. kubectl
 * asks for a username when a user entry has no credentials at all, so auth mode gets a
 * placeholder token (the proxy removes it; the tailnet says who the caller is).
 */
async function kubeconfig(name: string, server: string, token = "tailnet-identity"): Promise<string> {
  const file = join(dir, `${name}.kubeconfig`);
  const tls = server.startsWith("https:") ? { "certificate-authority": caCert, "tls-server-name": FQDN } : {};
  await writeFile(file, stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "tailnet", cluster: { server, ...tls } }],
    users: [{ name: "tailnet-user", user: { token } }],
    contexts: [{ name: "tailnet", context: { cluster: "tailnet", user: "tailnet-user" } }],
    "current-context": "tailnet",
  }), { mode: 0o600 });
  return file;
}

interface Kubectl { ok: boolean; stdout: string; stderr: string }

async function run(device: TailnetDevice, config: string, args: string[]): Promise<Kubectl> {
  try {
    const { stdout, stderr } = await sandbox.runner.run(device.exec([kubectl, "--kubeconfig", config, "--request-timeout=20s", ...args]), { timeoutMs: 40_000 });
    return { ok: true, stdout, stderr };
  } catch (error) {
    if (error instanceof CommandError) return { ok: false, stdout: error.stdout, stderr: error.stderr };
    throw error;
  }
}

async function proxyPods(): Promise<V1Pod[]> {
  return (await env.core.listNamespacedPod({ namespace: OPERATOR_NAMESPACE, labelSelector: "tailscale.com/parent-resource-type=apiserver" })).items;
}

/** The proxy pod's last log lines, for a failure message. */
async function proxyLogs(): Promise<string> {
  const name = (await proxyPods())[0]?.metadata?.name;
  return name ? `${name}:\n${await env.podLogTail(OPERATOR_NAMESPACE, name, 30)}` : "no proxy pod";
}

/** Retries a kubectl command until it succeeds (the proxy may still be starting); the failure names the last error. */
async function untilOk(device: TailnetDevice, config: string, args: string[], what: string, timeoutMs: number): Promise<string> {
  let last: Kubectl | undefined;
  try {
    return await waitFor(what, async () => {
      last = await run(device, config, args);
      return last.ok ? last.stdout : undefined;
    }, { timeoutMs, intervalMs: 1_000 });
  } catch (error) {
    throw new Error(`${(error as Error).message}; last kubectl error: ${last?.stderr ?? "none"}; ${await proxyLogs()}`);
  }
}

/** Who the API server says the caller is (SelfSubjectReview), through the proxy. */
async function whoami(device: TailnetDevice, config: string, extra: string[] = []): Promise<{ username: string; groups: string[] }> {
  const result = await run(device, config, ["auth", "whoami", "-o", "json", ...extra]);
  assert.ok(result.ok, `kubectl auth whoami failed: ${result.stderr}`);
  const review = JSON.parse(result.stdout) as { status: { userInfo: { username: string; groups?: string[] } } };
  return { username: review.status.userInfo.username, groups: review.status.userInfo.groups ?? [] };
}

/** A long-running kubectl in a device's namespace; its output is collected as it comes. */
function background(device: TailnetDevice, config: string, args: string[]): { proc: ChildProcess; output: () => string } {
  const [command, ...rest] = device.exec([kubectl, "--kubeconfig", config, ...args]);
  const proc = spawn(command ?? "", rest, { stdio: ["ignore", "pipe", "pipe"] });
  children.push(proc);
  let output = "";
  proc.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  proc.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  return { proc, output: () => output };
}

let aliceConfig: string;
let bobConfig: string;
let ciConfig: string;

before(async () => {
  await mkdir(dir, { recursive: true });
  await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", join(dir, "ca.key")]);
  await openssl(["req", "-x509", "-new", "-key", join(dir, "ca.key"), "-subj", "/CN=apiserver-proxy-test-ca", "-days", "2", "-out", caCert]);
  await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", join(dir, "tls.key")]);
  await openssl(["req", "-new", "-key", join(dir, "tls.key"), "-subj", `/CN=${FQDN}`, "-out", join(dir, "tls.csr")]);
  await writeFile(join(dir, "tls.ext"), `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:${FQDN}\n`);
  await openssl(["x509", "-req", "-in", join(dir, "tls.csr"), "-CA", caCert, "-CAkey", join(dir, "ca.key"), "-set_serial", "0x51", "-days", "2", "-extfile", join(dir, "tls.ext"), "-out", join(dir, "tls.crt")]);

  await env.ensureNamespace(OPERATOR_NAMESPACE);
  await applyObject({
    apiVersion: "v1",
    kind: "Secret",
    type: "kubernetes.io/tls",
    metadata: { name: "k8s-api-tls", namespace: OPERATOR_NAMESPACE },
    data: { "tls.crt": (await readFile(join(dir, "tls.crt"))).toString("base64"), "tls.key": (await readFile(join(dir, "tls.key"))).toString("base64") },
  } as KubernetesObject);
  await installOperator(sandbox, { values: AUTH_VALUES });
  // Hostnames of their own: a MagicDNS name stays with the first device that had it in the shared tailnet.
  [alice, bob, ci] = await Promise.all([
    sandbox.addDevice("apiproxy-alice", { user: "alice" }),
    sandbox.addDevice("apiproxy-bob", { user: "bob" }),
    sandbox.addDevice("apiproxy-ci", { tags: ["tag:test"] }),
  ]);

  // What the tailnet identities may do: tailnet-readers (alice's grant) read pods and use them in
  // team-a; tag:test (the CI runner's tag, no grant) reads ConfigMaps there.
  await env.ensureNamespace(NS);
  const rbac = "rbac.authorization.k8s.io/v1";
  await applyObject({ apiVersion: rbac, kind: "Role", metadata: { name: "pod-user", namespace: NS }, rules: [
    { apiGroups: [""], resources: ["pods", "pods/log", "configmaps"], verbs: ["get", "list", "watch"] },
    { apiGroups: [""], resources: ["pods/exec", "pods/portforward"], verbs: ["create", "get"] },
  ] } as KubernetesObject);
  await applyObject({ apiVersion: rbac, kind: "RoleBinding", metadata: { name: "tailnet-readers", namespace: NS }, roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "pod-user" }, subjects: [{ kind: "Group", name: "tailnet-readers", apiGroup: "rbac.authorization.k8s.io" }] } as KubernetesObject);
  await applyObject({ apiVersion: rbac, kind: "Role", metadata: { name: "configmap-reader", namespace: NS }, rules: [{ apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list"] }] } as KubernetesObject);
  await applyObject({ apiVersion: rbac, kind: "RoleBinding", metadata: { name: "ci", namespace: NS }, roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "configmap-reader" }, subjects: [{ kind: "Group", name: "tag:test", apiGroup: "rbac.authorization.k8s.io" }] } as KubernetesObject);
  await applyObject({ apiVersion: "v1", kind: "Pod", metadata: { name: "web", namespace: NS, labels: { app: "web" } }, spec: { containers: [{ name: "nginx", image: NGINX_IMAGE, imagePullPolicy: "IfNotPresent", ports: [{ containerPort: 80 }] }] } } as KubernetesObject);
  await applyObject({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "settings", namespace: NS }, data: { a: "1" } } as KubernetesObject);

  const server = `https://${await proxyAddress()}`;
  [aliceConfig, bobConfig, ciConfig] = await Promise.all([kubeconfig("alice", server), kubeconfig("bob", server), kubeconfig("ci", server)]);
  await waitFor("pod team-a/web running", async () => (await env.pod(NS, "web"))?.status?.phase === "Running" || undefined, { timeoutMs: 120_000, intervalMs: 500 });
});

after(() => {
  // By PID (ChildProcess.kill); one that already exited is left alone.
  for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
});

describe("API server proxy (auth): tailnet identities against the real API server's RBAC", () => {
  it("a user with a grant is impersonated by login name with the granted group, and RBAC limits them to team-a", async () => {
    // The proxy comes up with the operator's install; the first call may race its listener.
    const answer = await untilOk(alice, aliceConfig, ["auth", "whoami", "-o", "json"], "alice reaches the API server through the proxy", 120_000);
    const me = (JSON.parse(answer) as { status: { userInfo: { username: string; groups?: string[] } } }).status.userInfo;
    assert.match(me.username, /^alice/);
    assert.ok(me.groups?.includes("tailnet-readers"), `groups: ${JSON.stringify(me.groups)}`);

    const pods = await run(alice, aliceConfig, ["get", "pods", "-n", NS, "-o", "name"]);
    assert.ok(pods.ok, pods.stderr);
    assert.equal(pods.stdout.trim(), "pod/web");
    const elsewhere = await run(alice, aliceConfig, ["get", "pods", "-n", "default"]);
    assert.equal(elsewhere.ok, false);
    assert.match(elsewhere.stderr, new RegExp(`User "${me.username}" cannot list resource "pods".*in the namespace "default"`));
  });

  it("strips the Authorization and Impersonate-* headers a caller sends", async () => {
    // The sandbox's admin token and an impersonation of system:masters, sent by kubectl itself.
    const admin = await readFile(sandbox.kubeconfigPath, "utf8");
    const token = /token: (\S+)/.exec(admin)?.[1] ?? "";
    assert.ok(token, "the sandbox admin kubeconfig has a token");
    const spoofing = await kubeconfig("alice-spoofing", `https://${await proxyAddress()}`, token);
    const me = await whoami(alice, spoofing, ["--as=system:admin", "--as-group=system:masters"]);
    assert.match(me.username, /^alice/);
    assert.equal(me.groups.includes("system:masters"), false);
    const secrets = await run(alice, spoofing, ["get", "secrets", "-n", OPERATOR_NAMESPACE, "--as=system:admin", "--as-group=system:masters"]);
    assert.equal(secrets.ok, false, "the admin token did not pass");
    assert.match(secrets.stderr, /Forbidden|forbidden/);
  });

  it("a user without a grant is themselves with no groups of ours: RBAC refuses them", async () => {
    const me = await whoami(bob, bobConfig);
    assert.match(me.username, /^bob/);
    assert.equal(me.groups.includes("tailnet-readers"), false);
    const pods = await run(bob, bobConfig, ["get", "pods", "-n", NS]);
    assert.equal(pods.ok, false);
    assert.match(pods.stderr, /cannot list resource "pods"/);
  });

  it("a tagged device is impersonated by its MagicDNS name, with its tags as groups when no grant applies", async () => {
    const me = await whoami(ci, ciConfig);
    assert.equal(me.username, `apiproxy-ci.${TAILNET_DOMAIN}`);
    assert.ok(me.groups.includes("tag:test"), `groups: ${JSON.stringify(me.groups)}`);
    const maps = await run(ci, ciConfig, ["get", "configmaps", "-n", NS, "-o", "name"]);
    assert.ok(maps.ok, maps.stderr);
    assert.match(maps.stdout, /configmap\/settings/);
    assert.equal((await run(ci, ciConfig, ["get", "pods", "-n", NS])).ok, false);
  });

  it("kubectl exec, port-forward, logs -f and watch work through the proxy (upgraded and streaming connections)", async () => {
    // The sandbox's nginx image holds nginx and little else: nginx -v answers on stderr.
    const exec = await run(alice, aliceConfig, ["exec", "-n", NS, "web", "--", "nginx", "-v"]);
    assert.ok(exec.ok, exec.stderr);
    assert.match(exec.stderr, /nginx version: nginx\//);

    const logs = background(alice, aliceConfig, ["logs", "-f", "-n", NS, "web"]);
    const forward = background(alice, aliceConfig, ["port-forward", "-n", NS, "pod/web", "18080:80"]);
    await waitFor("port-forward listening", () => Promise.resolve(/Forwarding from 127\.0\.0\.1:18080/.test(forward.output()) || undefined), { timeoutMs: 30_000, intervalMs: 200 });
    const page = await sandbox.runner.run(alice.exec(["curl", "-sS", "-A", "apiserver-proxy-test", "http://127.0.0.1:18080/"]), { timeoutMs: 20_000 });
    assert.match(page.stdout, /Welcome to nginx/);
    // nginx logs that request; `logs -f` streams it through the proxy as it happens.
    await waitFor("the request in kubectl logs -f", () => Promise.resolve(logs.output().includes("apiserver-proxy-test") || undefined), { timeoutMs: 30_000, intervalMs: 200 });

    const watch = background(alice, aliceConfig, ["get", "configmaps", "-n", NS, "--watch", "-o", "name"]);
    await waitFor("watch started", () => Promise.resolve(watch.output().includes("configmap/settings") || undefined), { timeoutMs: 30_000, intervalMs: 200 });
    await applyObject({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "added-later", namespace: NS }, data: { b: "2" } } as KubernetesObject);
    await waitFor("the new ConfigMap in the watch", () => Promise.resolve(watch.output().includes("configmap/added-later") || undefined), { timeoutMs: 30_000, intervalMs: 200 });
    for (const child of [logs.proc, forward.proc, watch.proc]) child.kill("SIGTERM");
  });
});

describe("API server proxy: other modes, and off", () => {
  it("noauth passes the caller's own bearer token and adds no identity; a token the API server does not know is refused by it", async () => {
    const address = await proxyAddress();
    const before = (await proxyPods()).map((p) => p.metadata?.uid);
    assert.equal(before.length, 1, "the auth mode's proxy pod");
    await installOperator(sandbox, { values: { ...AUTH_VALUES, apiServerProxy: { ...AUTH_VALUES.apiServerProxy, mode: "noauth" } } });
    await applyObject({ apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "tester", namespace: NS } });
    const token = (await env.core.createNamespacedServiceAccountToken({ name: "tester", namespace: NS, body: { spec: { audiences: [], expirationSeconds: 600 } } })).status?.token ?? "";
    const server = `https://${address}`;
    // The same device (its state is kept) restarts in noauth mode.
    const answer = await untilOk(alice, await kubeconfig("noauth-token", server, token), ["auth", "whoami", "-o", "json"], "the proxy passing the caller's token", 180_000);
    const me = (JSON.parse(answer) as { status: { userInfo: { username: string } } }).status.userInfo;
    assert.equal(me.username, `system:serviceaccount:${NS}:tester`);
    // Switched live: the pod that served auth mode serves noauth, no restart and no outage.
    assert.deepEqual((await proxyPods()).map((p) => p.metadata?.uid), before);
    const unknown = await run(alice, await kubeconfig("noauth-unknown", server, "not-a-token-of-this-cluster"), ["get", "pods", "-n", NS]);
    assert.equal(unknown.ok, false);
    assert.match(unknown.stderr, /Unauthorized/, "noauth passed the caller's token instead of acting for them");
  });

  it("auth over plain HTTP (apiServerProxy.http): the tailnet identity still decides", async () => {
    const address = await proxyAddress();
    await installOperator(sandbox, { values: { replicaCount: 1, apiServerProxy: { mode: "auth", hostname: HOSTNAME, http: true } } });
    // kubectl sends no token over http:// at all; in auth mode none is needed.
    const answer = await untilOk(alice, await kubeconfig("alice-http", `http://${address}`), ["auth", "whoami", "-o", "json"], "the proxy serving plain HTTP", 180_000);
    const me = (JSON.parse(answer) as { status: { userInfo: { username: string; groups?: string[] } } }).status.userInfo;
    assert.match(me.username, /^alice/);
    assert.ok(me.groups?.includes("tailnet-readers"));
  });

  it("turned off, the proxy and its device are removed", async () => {
    await installOperator(sandbox, { values: { replicaCount: 1 } });
    await waitFor(`${HOSTNAME} deleted from the tailnet`, async () => (await sandbox.headscaleAdmin.listNodes()).every((n) => n.given_name !== HOSTNAME) || undefined, { timeoutMs: 120_000, intervalMs: 500 });
    // The device goes before the Secrets that name it; then everything the proxy had.
    const children = "tailscale.com/parent-resource-type=apiserver";
    const left = async (): Promise<string[]> => {
      const secrets = await env.objects.list("v1", "Secret", OPERATOR_NAMESPACE, undefined, undefined, undefined, undefined, children);
      const sets = await env.objects.list("apps/v1", "StatefulSet", OPERATOR_NAMESPACE, undefined, undefined, undefined, undefined, children);
      return [...secrets.items.map((o) => `Secret/${o.metadata?.name ?? ""}`), ...sets.items.map((o) => `StatefulSet/${o.metadata?.name ?? ""}`)];
    };
    await waitFor("the proxy's objects to be deleted", async () => (await left()).length === 0 || undefined, { timeoutMs: 60_000, intervalMs: 500 }).catch(async (error: unknown) => {
      throw new Error(`${(error as Error).message}; left: ${(await left()).join(", ")}\n${await env.operatorLogTails(60)}`);
    });
    // The Removed Event is recorded after the last object goes: wait for it rather than read once.
    const reasonsNow = async (): Promise<Set<string | undefined>> =>
      new Set((await env.core.listNamespacedEvent({ namespace: OPERATOR_NAMESPACE, fieldSelector: "involvedObject.kind=Deployment" })).items.map((e) => e.reason));
    const reasons = await waitFor("ApiServerProxyReady and ApiServerProxyRemoved Events on the operator's Deployment", async () => {
      const seen = await reasonsNow();
      return seen.has("ApiServerProxyReady") && seen.has("ApiServerProxyRemoved") ? seen : undefined;
    }, { timeoutMs: 30_000, intervalMs: 250 }).catch(async () => reasonsNow());
    assert.ok(reasons.has("ApiServerProxyReady") && reasons.has("ApiServerProxyRemoved"), `Events on the operator's Deployment: ${[...reasons].join(", ")}`);
  });
});
