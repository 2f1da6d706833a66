// The Helm chart: lint, renders of every control plane / credential source / forwarding mode,
// the checks that reject bad values, and the static manifest generated from it. Needs the pinned
// helm binary (make bins), nothing else: no cluster, no root.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { CommandError } from "../../src/shared/exec.ts";
import { loadOperatorConfig, operatorEnvSchema } from "../../src/operator/config.ts";
import { CHART_DIR, REPO_ROOT, STATIC_MANIFEST, TEST_DIGEST, TEST_PRIORITY_CLASS, VARIANTS, helm, helmBinary, parseObjects, renderChart, renderObjects, renderStaticManifest, type KubeObject } from "./helm.ts";

// Fails (not skips) the whole file when helm is missing: a skipped chart test would hide a broken chart.
helmBinary();

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}
interface Container {
  name: string;
  image: string;
  env?: EnvVar[];
  ports?: { name: string; containerPort: number }[];
  livenessProbe?: { httpGet?: { path: string; port: string } };
  readinessProbe?: { httpGet?: { path: string; port: string } };
  securityContext?: Record<string, unknown> & { capabilities?: { drop?: string[]; add?: string[] }; seccompProfile?: { type: string } };
  volumeMounts?: { name: string; mountPath: string }[];
  resources?: unknown;
}
interface PodSpec {
  serviceAccountName?: string;
  securityContext?: Record<string, unknown> & { seccompProfile?: { type: string }; sysctls?: unknown[] };
  containers: Container[];
  initContainers?: Container[];
  volumes?: ({ name: string; secret?: { secretName: string; items?: { key: string; path: string }[] } } & Record<string, unknown>)[];
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  priorityClassName?: string;
}
interface Deployment extends KubeObject {
  spec: { replicas: number; template: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec } };
}
interface Rule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
}

const CHART_VERSION = (parse(readFileSync(join(CHART_DIR, "Chart.yaml"), "utf8")) as { appVersion: string }).appVersion;

function byKind(objects: readonly KubeObject[], kind: string): KubeObject[] {
  return objects.filter((o) => o.kind === kind);
}

function deployment(objects: readonly KubeObject[]): Deployment {
  const found = byKind(objects, "Deployment");
  assert.equal(found.length, 1, "exactly one Deployment");
  return found[0] as Deployment;
}

function operatorContainer(objects: readonly KubeObject[]): Container {
  const container = deployment(objects).spec.template.spec.containers.find((c) => c.name === "operator");
  assert.ok(container, "the Deployment has an operator container");
  return container;
}

function envOf(objects: readonly KubeObject[]): Map<string, EnvVar> {
  return new Map((operatorContainer(objects).env ?? []).map((e) => [e.name, e]));
}

function envValue(objects: readonly KubeObject[], name: string): string | undefined {
  return envOf(objects).get(name)?.value;
}

/**
 * What Pod Security "restricted" (and "baseline" under it) checks on a pod spec, as the
 * admission plugin does: a non-empty list means the pod would be rejected.
 */
function restrictedViolations(pod: PodSpec): string[] {
  const problems: string[] = [];
  const podSc = pod.securityContext ?? {};
  if (pod.hostNetwork || pod.hostPID || pod.hostIPC) problems.push("host namespaces");
  const allowedVolumes = new Set(["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"]);
  for (const volume of pod.volumes ?? []) {
    const types = Object.keys(volume).filter((k) => k !== "name");
    if (!types.every((t) => allowedVolumes.has(t))) problems.push(`volume ${volume.name} has type ${types.join(",")}`);
  }
  if (podSc["sysctls"] !== undefined) problems.push("pod sysctls");
  for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
    const sc = c.securityContext ?? {};
    const runAsNonRoot = sc["runAsNonRoot"] ?? podSc["runAsNonRoot"];
    const runAsUser = sc["runAsUser"] ?? podSc["runAsUser"];
    const seccomp = sc.seccompProfile?.type ?? podSc.seccompProfile?.type;
    if (sc["privileged"] === true) problems.push(`${c.name}: privileged`);
    if (sc["allowPrivilegeEscalation"] !== false) problems.push(`${c.name}: allowPrivilegeEscalation is not false`);
    if (runAsNonRoot !== true) problems.push(`${c.name}: runAsNonRoot is not true`);
    if (runAsUser === 0) problems.push(`${c.name}: runAsUser 0`);
    if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost") problems.push(`${c.name}: seccompProfile ${String(seccomp)}`);
    if (!sc.capabilities?.drop?.includes("ALL")) problems.push(`${c.name}: capabilities do not drop ALL`);
    if ((sc.capabilities?.add ?? []).some((cap) => cap !== "NET_BIND_SERVICE")) problems.push(`${c.name}: adds capabilities`);
    if ((c.ports ?? []).some((p) => "hostPort" in p)) problems.push(`${c.name}: hostPort`);
  }
  return problems;
}

interface PodSpecLike {
  serviceAccountName?: string;
  containers: { args?: string[]; env?: unknown[] }[];
  volumes?: unknown[];
}

/** Helm's error text for a render that must fail. */
async function renderError(values: object): Promise<string> {
  try {
    await renderChart(values);
  } catch (error) {
    if (error instanceof CommandError) return error.stderr;
    throw error;
  }
  assert.fail(`rendering ${JSON.stringify(values)} succeeded, but it must fail`);
}

const FULLY_QUALIFIED = /^[a-z0-9.-]+\.[a-z0-9.-]+(:\d+)?\/[a-z0-9]+([._/-][a-z0-9]+)*(:[\w][\w.-]{0,127}|@sha256:[a-f0-9]{64})$/;

describe("chart", () => {
  it("declares the package.json version as appVersion", () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { version: string };
    assert.equal(CHART_VERSION, pkg.version);
  });

  for (const variant of VARIANTS) {
    it(`passes helm lint --strict: ${variant.name}`, async () => {
      const { stdout } = await helm(["lint", "--strict", CHART_DIR], variant.values);
      assert.match(stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    });
  }

  for (const variant of VARIANTS) {
    describe(`renders: ${variant.name}`, async () => {
      const objects = await renderObjects(variant.values);
      const values = variant.values as { controlPlane: { type?: string; existingSecret?: string }; proxy?: { forwarding?: string } };
      const headscale = values.controlPlane.type === "headscale";

      it("labels every object, and puts namespaced ones in the release namespace", () => {
        const clusterScoped = new Set(["ClusterRole", "ClusterRoleBinding", "IngressClass"]);
        for (const o of objects) {
          const labels = o.metadata.labels ?? {};
          for (const key of ["app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"]) {
            assert.ok(labels[key], `${o.kind}/${o.metadata.name} has label ${key}`);
          }
          assert.equal(o.metadata.namespace, clusterScoped.has(o.kind) ? undefined : "tailscale", `${o.kind}/${o.metadata.name} namespace`);
        }
        assert.equal(byKind(objects, "Namespace").length, 0, "the chart does not create the namespace");
      });

      it("runs the operator Pod Security restricted-compliant, read-only, with probes on :8081", () => {
        const pod = deployment(objects).spec.template.spec;
        assert.deepEqual(restrictedViolations(pod), []);
        const container = operatorContainer(objects);
        const sc = container.securityContext ?? {};
        assert.equal(sc["readOnlyRootFilesystem"], true);
        assert.equal(sc["runAsUser"], 65532);
        assert.equal(sc["runAsGroup"], 65532);
        assert.deepEqual(container.ports?.map((p) => [p.name, p.containerPort]), [["http", 8081]]);
        assert.deepEqual(container.livenessProbe?.httpGet, { path: "/healthz", port: "http" });
        assert.deepEqual(container.readinessProbe?.httpGet, { path: "/readyz", port: "http" });
        assert.equal(pod.serviceAccountName, byKind(objects, "ServiceAccount")[0]?.metadata.name);
      });

      it("gives the operator fully qualified images and its identity from the downward API", () => {
        assert.match(operatorContainer(objects).image, FULLY_QUALIFIED);
        assert.match(envValue(objects, "PROXY_IMAGE") ?? "", FULLY_QUALIFIED);
        const env = envOf(objects);
        assert.equal(env.get("OPERATOR_NAMESPACE")?.valueFrom?.fieldRef?.fieldPath, "metadata.namespace");
        assert.equal(env.get("LEADER_ELECTION_ID")?.valueFrom?.fieldRef?.fieldPath, "metadata.name");
        // With one replica too: a rollout runs the old pod beside the new one for a while.
        assert.equal(envValue(objects, "LEADER_ELECTION"), "true");
        assert.equal(envValue(objects, "PROXY_FORWARDING"), values.proxy?.forwarding ?? "init-container");
        assert.match(envValue(objects, "NODE_OPTIONS") ?? "", /^--max-old-space-size=\d+ --max-semi-space-size=\d+$/);
        assert.match(envValue(objects, "MALLOC_ARENA_MAX") ?? "", /^[1-9]\d*$/);
      });

      it("sets only settings the operator knows, with values its own configuration accepts", () => {
        const env = Object.fromEntries([...envOf(objects)].map(([name, e]) => [name, e.value ?? `downward-api:${e.valueFrom?.fieldRef?.fieldPath ?? ""}`]));
        // NODE_OPTIONS is Node's and MALLOC_ARENA_MAX glibc's, not the operator's.
        assert.deepEqual(Object.keys(env).filter((name) => !(name in operatorEnvSchema.shape) && name !== "NODE_OPTIONS" && name !== "MALLOC_ARENA_MAX"), []);
        assert.doesNotThrow(() => loadOperatorConfig(env));
      });

      it("mounts exactly the credential files the control plane needs, from the right Secret", () => {
        const pod = deployment(objects).spec.template.spec;
        const volume = pod.volumes?.find((v) => v.name === "credentials");
        const secretName = values.controlPlane.existingSecret ?? "tailnet-operator-credentials";
        assert.equal(volume?.secret?.secretName, secretName);
        const files = headscale ? { HEADSCALE_API_KEY_FILE: "api-key" } : { CLIENT_ID_FILE: "client_id", CLIENT_SECRET_FILE: "client_secret" };
        assert.deepEqual(volume.secret.items?.map((i) => i.key), Object.values(files));
        for (const [name, file] of Object.entries(files)) assert.equal(envValue(objects, name), `/etc/tailnet-operator/${file}`);
        assert.equal(envValue(objects, "CONTROL_PLANE"), headscale ? "headscale" : "tailscale");
        assert.equal(envOf(objects).has(headscale ? "CLIENT_ID_FILE" : "HEADSCALE_API_KEY_FILE"), false);
        const secrets = byKind(objects, "Secret");
        assert.deepEqual(secrets.map((s) => s.metadata.name), variant.createsSecret ? ["tailnet-operator-credentials"] : []);
        if (variant.createsSecret) {
          assert.deepEqual(Object.keys(secrets[0]?.["data"] as object), Object.values(files));
          assert.ok(deployment(objects).spec.template.metadata.annotations?.["checksum/credentials"], "new credentials roll the pods");
        }
      });

      it("grants least privilege: no wildcards, no cluster-admin, no escalate/bind/impersonate", () => {
        for (const role of [...byKind(objects, "ClusterRole"), ...byKind(objects, "Role")]) {
          for (const rule of role["rules"] as Rule[]) {
            assert.ok(![...(rule.verbs), ...(rule.resources ?? []), ...(rule.apiGroups ?? [])].includes("*"), `${role.kind} rule ${JSON.stringify(rule)} has a wildcard`);
            assert.ok(!rule.verbs.some((v) => ["escalate", "bind", "impersonate"].includes(v)), `${role.kind} rule ${JSON.stringify(rule)}`);
            // Cluster-wide, Secrets are only read (Ingress TLS Secrets, copied to their proxies); every write stays in the release namespace.
            assert.ok(!(rule.resources ?? []).includes("secrets") || role.kind === "Role" || rule.verbs.every((v) => ["get", "list", "watch"].includes(v)), "Secrets written only in the release namespace");
          }
        }
        for (const binding of [...byKind(objects, "ClusterRoleBinding"), ...byKind(objects, "RoleBinding")]) {
          assert.equal((binding["roleRef"] as { name: string }).name, "tailnet-operator");
        }
      });
    });
  }

  it("defaults: operator and proxy images from ghcr.io at the appVersion, proxy defaults, two replicas", async () => {
    const objects = await renderObjects(VARIANTS[0]!.values);
    assert.equal(operatorContainer(objects).image, `ghcr.io/tailnet-operator/operator:${CHART_VERSION}`);
    assert.equal(envValue(objects, "PROXY_IMAGE"), `ghcr.io/tailnet-operator/proxy:${CHART_VERSION}`);
    assert.equal(envValue(objects, "PROXY_TAGS"), "tag:k8s");
    assert.equal(envValue(objects, "PROXY_FIREWALL_MODE"), "auto");
    assert.equal(envValue(objects, "PROXY_FORWARDING"), "init-container");
    // The operator's built-in default is what was measured; the chart repeats it.
    const builtIn = loadOperatorConfig({ CLIENT_ID_FILE: "/x", CLIENT_SECRET_FILE: "/y" }).PROXY_RESOURCES;
    assert.deepEqual(JSON.parse(envValue(objects, "PROXY_RESOURCES") ?? ""), builtIn);
    assert.equal(envOf(objects).has("PROXY_ENV"), false);
    assert.equal(envOf(objects).has("OPERATOR_LOGIN_SERVER"), false);
    assert.equal(envValue(objects, "TAILSCALE_API_URL"), "https://api.tailscale.com");
    assert.equal(envValue(objects, "NODE_OPTIONS"), "--max-old-space-size=384 --max-semi-space-size=2");
    assert.equal(envValue(objects, "MALLOC_ARENA_MAX"), "2");
    assert.equal(deployment(objects).spec.replicas, 2);
    assert.deepEqual(operatorContainer(objects).resources, { requests: { cpu: "50m", memory: "192Mi" }, limits: { memory: "512Mi" } });
    const ingressClass = byKind(objects, "IngressClass")[0];
    assert.equal(ingressClass?.metadata.name, "tailscale");
    assert.deepEqual(ingressClass["spec"], { controller: "tailscale.com/ts-ingress" });
  });

  it("lets a digest win over a tag, and a proxy without a registry use the operator's", async () => {
    const objects = await renderObjects({
      controlPlane: { existingSecret: "c" },
      image: { registry: "registry.example.com", tag: "1.2.3", digest: TEST_DIGEST },
      proxy: { image: { tag: "1.2.3", digest: TEST_DIGEST } },
    });
    assert.equal(operatorContainer(objects).image, `registry.example.com/tailnet-operator/operator@${TEST_DIGEST}`);
    assert.equal(envValue(objects, "PROXY_IMAGE"), `registry.example.com/tailnet-operator/proxy@${TEST_DIGEST}`);
  });

  it("passes every knob to the operator's environment", async () => {
    const variant = VARIANTS.find((v) => v.name.startsWith("pod-sysctls"))!;
    const objects = await renderObjects(variant.values);
    assert.equal(envValue(objects, "PROXY_IMAGE"), `mirror.example.com/tailnet-operator/proxy@${TEST_DIGEST}`);
    assert.equal(envValue(objects, "PROXY_ENV"), "A_FIRST=x=y,TS_DEBUG_MTU=1280");
    assert.deepEqual(JSON.parse(envValue(objects, "PROXY_RESOURCES") ?? ""), { requests: { cpu: "20m", memory: "80Mi" }, limits: { memory: "256Mi" } });
    const expected = {
      CONTROL_PLANE: "headscale",
      OPERATOR_LOGIN_SERVER: "https://headscale.example.com",
      PROXY_TAGS: "tag:k8s,tag:web",
      PROXY_FIREWALL_MODE: "nftables",
      PROXY_FORWARDING: "pod-sysctls",
      LEADER_ELECTION: "true",
      LEASE_DURATION_SECONDS: "30",
      RENEW_DEADLINE_SECONDS: "20",
      RETRY_PERIOD_SECONDS: "2.5",
      OPERATOR_WORKERS: "8",
      KUBE_API_QPS: "12.5",
      KUBE_API_BURST: "40",
      ORPHAN_KEY_SWEEP: "true",
      ORPHAN_KEY_SWEEP_TAGS: "tag:web,tag:test",
      OPERATOR_LOGGING: "debug",
      OPERATOR_DEFAULT_LOAD_BALANCER: "true",
      NODE_OPTIONS: "--max-old-space-size=300 --max-semi-space-size=4",
      MALLOC_ARENA_MAX: "1",
      OPERATOR_HTTP_ADDR: "0.0.0.0:8081",
    };
    for (const [name, value] of Object.entries(expected)) assert.equal(envValue(objects, name), value, name);
    assert.equal(envOf(objects).has("TAILSCALE_API_URL"), false);
    const template = deployment(objects).spec.template;
    assert.equal(template.metadata.labels["team"], "network");
    assert.equal(template.metadata.annotations?.["example.com/note"], "yes");
    assert.equal(template.spec.priorityClassName, TEST_PRIORITY_CLASS);
    assert.equal(byKind(objects, "IngressClass").length, 0);
  });

  it("ACME: settings in the operator's environment, the CA bundle in a ConfigMap and the EAB key from the user's Secret, mounted as files", async () => {
    const caBundle = "-----BEGIN CERTIFICATE-----\nMIIBexample\n-----END CERTIFICATE-----\n";
    const objects = await renderObjects({
      controlPlane: { type: "headscale", loginServer: "https://headscale.example.com", existingSecret: "headscale-key" },
      acme: { directoryUrl: "https://ca.example.com/acme/directory", caBundle, email: "ops@example.com", profile: "shortlived", challenge: "tls-alpn-01", eab: { keyId: "kid-1", hmacKeySecret: { name: "acme-eab", key: "hmac" } }, maxOrdersPerHour: 10, maxOrdersPerWeek: 50 },
    });
    const expected = {
      ACME_DIRECTORY_URL: "https://ca.example.com/acme/directory",
      ACME_EMAIL: "ops@example.com",
      ACME_PROFILE: "shortlived",
      ACME_CHALLENGE: "tls-alpn-01",
      ACME_EAB_KEY_ID: "kid-1",
      ACME_CA_BUNDLE_FILE: "/etc/tailnet-operator-acme/ca/ca.pem",
      ACME_EAB_HMAC_KEY_FILE: "/etc/tailnet-operator-acme/eab/hmac-key",
      ACME_MAX_ORDERS_PER_HOUR: "10",
      ACME_MAX_ORDERS_PER_WEEK: "50",
    };
    for (const [name, value] of Object.entries(expected)) assert.equal(envValue(objects, name), value, name);
    const env = Object.fromEntries([...envOf(objects)].map(([name, e]) => [name, e.value ?? "x"]));
    assert.doesNotThrow(() => loadOperatorConfig(env));
    const configMap = byKind(objects, "ConfigMap").find((c) => c.metadata.name === "tailnet-operator-acme-ca");
    assert.equal((configMap?.["data"] as Record<string, string> | undefined)?.["ca.pem"], caBundle);
    const pod = deployment(objects).spec.template.spec;
    const eab = pod.volumes?.find((v) => v.name === "acme-eab");
    assert.ok(eab, "the EAB key is mounted");
    assert.equal(eab.secret?.secretName, "acme-eab");
    assert.deepEqual(eab.secret.items, [{ key: "hmac", path: "hmac-key" }]);
    assert.equal((pod.volumes?.find((v) => v.name === "acme-ca") as { configMap?: { name?: string } } | undefined)?.configMap?.name, "tailnet-operator-acme-ca");
    assert.ok(deployment(objects).spec.template.metadata.annotations?.["checksum/acme-ca"], "a new CA bundle rolls the pods");
    // Without a directory URL, nothing of ACME is rendered.
    const off = await renderObjects({ controlPlane: { existingSecret: "c" } });
    assert.equal([...envOf(off).keys()].some((name) => name.startsWith("ACME_")), false);
    assert.equal(byKind(off, "ConfigMap").length, 0);
  });

  describe("rejects bad values with a message naming the value", () => {
    const cases: [string, object, RegExp][] = [
      ["no credentials (the defaults)", {}, /controlPlane\.type=tailscale needs an OAuth client: set controlPlane\.existingSecret/],
      ["headscale without loginServer", { controlPlane: { type: "headscale", existingSecret: "c" } }, /controlPlane\.type=headscale needs controlPlane\.loginServer/],
      ["headscale without an API key", { controlPlane: { type: "headscale", loginServer: "https://hs.example.com" } }, /controlPlane\.type=headscale needs an API key/],
      ["two credential sources", { controlPlane: { existingSecret: "c", oauth: { clientId: "a", clientSecret: "b" } } }, /ONE way: controlPlane\.existingSecret or controlPlane\.oauth/],
      ["half an OAuth client", { controlPlane: { oauth: { clientId: "a" } } }, /controlPlane\.oauth needs both clientId and clientSecret/],
      ["a Headscale key for Tailscale", { controlPlane: { headscale: { apiKey: "k" } } }, /controlPlane\.headscale\.apiKey is a Headscale credential/],
      ["an OAuth client for Headscale", { controlPlane: { type: "headscale", loginServer: "https://hs.example.com", oauth: { clientId: "a", clientSecret: "b" } } }, /Tailscale OAuth credentials, but controlPlane\.type=headscale/],
      ["an unknown control plane", { controlPlane: { type: "netbird", existingSecret: "c" } }, /controlPlane\/type/],
      ["an unknown firewall mode", { controlPlane: { existingSecret: "c" }, proxy: { firewallMode: "pf" } }, /proxy\/firewallMode/],
      ["an unknown forwarding mode", { controlPlane: { existingSecret: "c" }, proxy: { forwarding: "sysctl" } }, /proxy\/forwarding/],
      ["a tag without tag:", { controlPlane: { existingSecret: "c" }, proxy: { tags: "k8s" } }, /proxy\/tags/],
      ["a comma in a proxy env value", { controlPlane: { existingSecret: "c" }, proxy: { env: { A: "1,2" } } }, /proxy\/env\/A/],
      ["a bad digest", { controlPlane: { existingSecret: "c" }, image: { digest: "latest" } }, /image\/digest/],
      ["a misspelt key", { controlPlane: { existingSecret: "c" }, replicas: 3 }, /replicas/],
      ["zero workers", { controlPlane: { existingSecret: "c" }, workers: 0 }, /workers/],
      ["an unknown API server proxy mode", { controlPlane: { existingSecret: "c" }, apiServerProxy: { mode: "true" } }, /apiServerProxy\/mode/],
      ["plain HTTP and a TLS Secret for the API server proxy", { controlPlane: { existingSecret: "c" }, apiServerProxy: { mode: "auth", http: true, tls: { secretName: "t" } } }, /http=true serves no certificate/],
      ["ACME settings without a directory", { controlPlane: { existingSecret: "c" }, acme: { email: "ops@example.com" } }, /acme: caBundle, email, profile and eab need acme\.directoryUrl/],
      ["an ACME directory over plain HTTP", { controlPlane: { existingSecret: "c" }, acme: { directoryUrl: "http://ca.example.com/dir" } }, /acme\/directoryUrl/],
      ["half an ACME external account binding", { controlPlane: { existingSecret: "c" }, acme: { directoryUrl: "https://ca.example.com/dir", eab: { keyId: "k" } } }, /acme\.eab: keyId and hmacKeySecret\.name go together/],
      ["an ACME CA bundle that is not PEM", { controlPlane: { existingSecret: "c" }, acme: { directoryUrl: "https://ca.example.com/dir", caBundle: "not a certificate" } }, /acme\/caBundle/],
      ["a zero burst", { controlPlane: { existingSecret: "c" }, kubeApi: { burst: 0 } }, /burst/],
      ["a renew deadline not shorter than the lease", { controlPlane: { existingSecret: "c" }, leaderElection: { leaseDurationSeconds: 10 } }, /retryPeriodSeconds \(2\) < renewDeadlineSeconds \(10\) < leaseDurationSeconds \(10\)/],
    ];
    for (const [name, values, message] of cases) {
      it(name, async () => {
        assert.match(await renderError(values), message);
      });
    }
  });

  it("API server proxy: off by default; auth gets a ServiceAccount that may impersonate users and groups and nothing else; noauth none", async () => {
    const base = { controlPlane: { existingSecret: "c" } };
    const off = await renderObjects(base);
    assert.equal(envOf(off).has("APISERVER_PROXY"), false);
    assert.equal(off.some((o) => o.metadata.name.endsWith("-apiserver-proxy")), false);

    const auth = await renderObjects({ ...base, apiServerProxy: { mode: "auth", hostname: "k8s", tls: { secretName: "k8s-tls" } } });
    const name = envValue(auth, "APISERVER_PROXY_SERVICE_ACCOUNT") ?? "";
    assert.deepEqual(
      ["APISERVER_PROXY", "APISERVER_PROXY_HOSTNAME", "APISERVER_PROXY_TLS_SECRET", "APISERVER_PROXY_HTTP"].map((n) => envValue(auth, n)),
      ["auth", "k8s", "k8s-tls", "false"],
    );
    assert.ok(byKind(auth, "ServiceAccount").some((o) => o.metadata.name === name));
    const role = byKind(auth, "ClusterRole").find((o) => o.metadata.name === name) as (KubeObject & { rules: unknown[] }) | undefined;
    assert.deepEqual(role?.rules, [{ apiGroups: [""], resources: ["users", "groups"], verbs: ["impersonate"] }]);
    const binding = byKind(auth, "ClusterRoleBinding").find((o) => o.metadata.name === name) as (KubeObject & { subjects: { name: string }[]; roleRef: { name: string } }) | undefined;
    assert.deepEqual([binding?.roleRef.name, binding?.subjects.map((s) => s.name)], [name, [name]]);
    // The config the operator gets must load (the same schema the operator validates with).
    const input = Object.fromEntries([...envOf(auth).values()].filter((e) => e.value !== undefined).map((e) => [e.name, e.value]));
    assert.equal(loadOperatorConfig({ ...input, CLIENT_ID_FILE: "/x", CLIENT_SECRET_FILE: "/y" }).APISERVER_PROXY, "auth");

    const noauth = await renderObjects({ ...base, apiServerProxy: { mode: "noauth", http: true } });
    assert.equal(envValue(noauth, "APISERVER_PROXY_HTTP"), "true");
    assert.ok(byKind(noauth, "ServiceAccount").some((o) => o.metadata.name === name));
    assert.equal(byKind(noauth, "ClusterRole").some((o) => o.metadata.name === name), false, "noauth needs no cluster-wide rights");
  });

  it("deploy/operator.yaml is exactly a fresh render of the chart (scripts/render-manifest.sh)", async () => {
    const fresh = await renderStaticManifest();
    const onDisk = readFileSync(STATIC_MANIFEST, "utf8");
    assert.ok(fresh === onDisk, "deploy/operator.yaml is stale: run scripts/render-manifest.sh and commit the result");
    const objects = parseObjects(onDisk);
    const namespace = objects[0];
    assert.equal(namespace?.kind, "Namespace");
    assert.equal(namespace.metadata.labels?.["pod-security.kubernetes.io/enforce"], "privileged");
    // kubectl users have no `helm uninstall`, so the pre-delete hook is not in their manifest.
    const chart = (await renderObjects(VARIANTS[0]!.values)).filter((o) => !o.metadata.annotations?.["helm.sh/hook"]);
    assert.deepEqual(objects.slice(1), chart, "the rest is the chart with existingSecret operator-credentials, without hooks");
  });

  it("runs `tailnet-operator uninstall` as a pre-delete hook, with the operator's identity, settings and credentials", async () => {
    const objects = await renderObjects(VARIANTS[0]!.values);
    const job = objects.find((o) => o.kind === "Job");
    const deployment = objects.find((o) => o.kind === "Deployment");
    assert.equal(job?.metadata.annotations?.["helm.sh/hook"], "pre-delete");
    const podOf = (o: unknown): PodSpecLike | undefined => (o as { spec?: { template: { spec: PodSpecLike } } } | undefined)?.spec?.template.spec;
    const pod = podOf(job);
    const operatorPod = podOf(deployment);
    assert.deepEqual(pod?.containers[0]?.args, ["uninstall"]);
    assert.equal(pod.serviceAccountName, operatorPod?.serviceAccountName);
    assert.deepEqual(pod.containers[0].env, operatorPod?.containers[0]?.env);
    assert.ok((pod.containers[0].env as EnvVar[] | undefined)?.some((e) => e.name === "OPERATOR_DEPLOYMENT" && e.value === deployment?.metadata.name), "uninstall scales the operator's own Deployment");
    assert.deepEqual(pod.volumes, operatorPod?.volumes);
    const without = await renderObjects({ ...VARIANTS[0]!.values, uninstall: { releaseServices: false } });
    assert.equal(without.find((o) => o.kind === "Job"), undefined);
  });
});
