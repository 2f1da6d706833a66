// The bad-input corpus (test/corpus/*.yaml) against the real operator in one sandbox: every case
// applied at once, then each checked against its expectation (condition, Warning Event, nothing
// half-made; or left alone; or refused by the API server; or, for the few odd-but-valid ones,
// a real proxy). At the end everything is deleted: no child object, device or usable key may be
// left, and the operator must not have restarted or crashed on any of it.
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import type { CoreV1Event, KubernetesObject, V1Condition, V1Ingress, V1Pod, V1Service } from "@kubernetes/client-node";
import { attachSandbox } from "../helpers/sandbox.ts";
import { ClusterEnv, OPERATOR_NAMESPACE } from "../helpers/cluster-env.ts";
import { loadCorpus, type CorpusCase } from "../helpers/corpus.ts";
import { installOperator } from "../../src/sandbox/operator-install.ts";
import { waitFor } from "../../src/shared/clock.ts";

const sandbox = await attachSandbox();
const env = new ClusterEnv(sandbox);
const CONDITION = "TailscaleProxyReady";
/** Conditions quote what the user wrote, but not a 100 KiB annotation whole. */
const MAX_MESSAGE = 1024;
const ORIGINAL_SPEC = "tailscale.com/egress-original-spec";
/** The order cases are checked in: by the time the ignored ones are, the operator has been through every other. */
const ORDER = ["rejected", "invalid", "cleaned", "failed", "ready", "ignored"] as const;
const cases = loadCorpus().sort((a, b) => ORDER.indexOf(a.expect.outcome) - ORDER.indexOf(b.expect.outcome));
/** What the API server said to each subject's create (only rejected cases have one). */
const refusals = new Map<string, string>();
const operator = { pods: new Map<string, number>(), since: new Date() };

type Subject = V1Service | V1Ingress;

before(async () => {
  await installOperator(sandbox, { values: { replicaCount: 1 } });
  for (const pod of await env.operatorPods()) operator.pods.set(pod.metadata?.uid ?? "", restarts(pod));
  operator.since = new Date();
  await env.ensureNamespace("corpus");
  await Promise.all(cases.map(async (c) => {
    for (const object of c.needs) await createOrKeep(object);
    try {
      await env.objects.create(c.subject);
    } catch (error) {
      refusals.set(c.file, (error as Error).message);
    }
  }));
});

const restarts = (pod: V1Pod): number => pod.status?.containerStatuses?.reduce((sum, s) => sum + s.restartCount, 0) ?? 0;

async function createOrKeep(object: KubernetesObject): Promise<void> {
  await env.objects.create(object).catch((error: unknown) => {
    if (!/AlreadyExists|already exists/.test((error as Error).message)) throw error;
  });
}

async function read(c: CorpusCase): Promise<Subject | undefined> {
  const { apiVersion = "", kind = "", metadata } = c.subject;
  return env.objects.read<Subject>({ apiVersion, kind, metadata: { name: metadata?.name ?? "", namespace: metadata?.namespace ?? "" } }).catch(() => undefined);
}

/** The operator's condition: in status for a Service, in the tailscale.com/conditions annotation for an Ingress. */
function conditionOf(subject: Subject): V1Condition | undefined {
  if (subject.kind === "Ingress") {
    const raw = subject.metadata?.annotations?.["tailscale.com/conditions"];
    return raw ? (JSON.parse(raw) as V1Condition[]).find((c) => c.type === CONDITION) : undefined;
  }
  return (subject as V1Service).status?.conditions?.find((c) => c.type === CONDITION);
}

/** The device a ready condition names (its MagicDNS name's first label). */
function deviceName(condition: V1Condition | undefined): string | undefined {
  return /exposed on the tailnet as ([^.\s]+)\./.exec(condition?.message ?? "")?.[1];
}

async function operatorEvents(c: CorpusCase): Promise<CoreV1Event[]> {
  const events = await env.events(c.subject.metadata?.namespace ?? "", c.subject.metadata?.name ?? "");
  return events.filter((e) => e.involvedObject.kind === c.subject.kind && e.source?.component === "tailnet-operator");
}

async function waitForCondition(c: CorpusCase, timeoutMs: number): Promise<{ subject: Subject; condition: V1Condition }> {
  const { reason, message = "" } = c.expect;
  const status = c.expect.outcome === "ready" ? "True" : "False";
  let last: V1Condition | undefined;
  try {
    return await waitFor(`${c.file}: condition ${status}/${reason ?? "any"} with "${message}"`, async () => {
      const subject = await read(c);
      const condition = subject && conditionOf(subject);
      last = condition;
      const matches = condition?.status === status && (reason === undefined || condition.reason === reason) && condition.message.includes(message);
      return subject && matches ? { subject, condition } : undefined;
    }, { timeoutMs, intervalMs: 500 });
  } catch (error) {
    const key = `${c.subject.metadata?.namespace ?? ""}/${c.subject.metadata?.name ?? ""}`;
    throw new Error(`${(error as Error).message}; last condition: ${(JSON.stringify(last) as string | undefined)?.slice(0, 600)}; operator log: ${await operatorLogAbout(key)}`, { cause: error });
  }
}

/** The operator's last log lines about one object, for a failure message. */
async function operatorLogAbout(key: string): Promise<string> {
  const lines: string[] = [];
  for (const pod of await env.operatorPods()) {
    const log = await env.core.readNamespacedPodLog({ namespace: OPERATOR_NAMESPACE, name: pod.metadata?.name ?? "" }).catch(() => "");
    lines.push(...log.split("\n").filter((line) => line.includes(`"${key}"`)));
  }
  return lines.slice(-8).map((line) => line.slice(0, 400)).join("\n");
}

async function assertWarningEvent(c: CorpusCase, condition: V1Condition): Promise<void> {
  const event = await waitFor(`${c.file}: a Warning Event ${condition.reason}`, async () => (await operatorEvents(c)).find((e) => e.type === "Warning" && e.reason === condition.reason), { timeoutMs: 30_000 });
  assert.ok(event.message?.includes(c.expect.message ?? ""), `the Event says what the condition says: ${event.message?.slice(0, 300) ?? ""}`);
}

async function assertNothingMade(c: CorpusCase, subject: Subject): Promise<void> {
  const { namespace = "", name = "" } = c.subject.metadata ?? {};
  assert.deepEqual(await env.children(namespace, name), [], "no proxy object");
  assert.equal(subject.metadata?.finalizers?.includes("tailscale.com/finalizer") ?? false, false, "no finalizer");
  if (c.expect.egress) {
    const spec = (c.subject as V1Service).spec;
    assert.equal((subject as V1Service).spec?.type, spec?.type ?? "ClusterIP", "the spec is as the user wrote it");
    assert.equal(subject.metadata?.annotations?.[ORIGINAL_SPEC], c.subject.metadata?.annotations?.[ORIGINAL_SPEC], "no spec kept for a rewrite");
  }
}

const checks: Record<CorpusCase["expect"]["outcome"], (c: CorpusCase) => Promise<void>> = {
  rejected: async (c) => {
    const refusal = refusals.get(c.file);
    assert.ok(refusal !== undefined, "the API server refused the object");
    assert.ok(refusal.includes(c.expect.message ?? ""), `the refusal names the problem: ${refusal.slice(0, 500)}`);
    assert.equal(await read(c), undefined);
  },
  invalid: async (c) => {
    const { subject, condition } = await waitForCondition(c, 120_000);
    assert.ok(condition.message.length <= MAX_MESSAGE, `a readable message: ${condition.message.length} characters`);
    await assertWarningEvent(c, condition);
    await assertNothingMade(c, subject);
  },
  failed: async (c) => {
    const { condition } = await waitForCondition(c, 300_000);
    await assertWarningEvent(c, condition);
  },
  ready: async (c) => {
    const { subject, condition } = await waitForCondition(c, 300_000);
    const ingress = (subject as V1Service).status?.loadBalancer?.ingress ?? [];
    if (c.expect.statusIpFamilies) {
      const families = [...new Set(ingress.flatMap((i) => (i.ip ? [i.ip.includes(":") ? "IPv6" : "IPv4"] : [])))].sort();
      assert.deepEqual(families, c.expect.statusIpFamilies, `status addresses: ${JSON.stringify(ingress)}`);
    }
    if (c.expect.deviceTags) {
      const hostname = deviceName(condition) ?? "";
      const [device] = await env.devices(hostname);
      assert.deepEqual([...(device?.tags ?? [])].sort(), c.expect.deviceTags);
    }
  },
  cleaned: async (c) => {
    const subject = await waitFor(`${c.file}: ${String(c.expect.absentAnnotations)} removed`, async () => {
      const live = await read(c);
      return live && !c.expect.absentAnnotations?.some((key) => live.metadata?.annotations?.[key] !== undefined) ? live : undefined;
    }, { timeoutMs: 120_000, intervalMs: 500 });
    assert.equal(conditionOf(subject), undefined, "no condition");
    assert.deepEqual(await env.children(c.subject.metadata?.namespace ?? "", c.subject.metadata?.name ?? ""), [], "no proxy object");
    assert.equal(subject.metadata?.finalizers, undefined, "no finalizer");
    assert.equal((subject as V1Service).spec?.type, (c.subject as V1Service).spec?.type ?? "ClusterIP", "the spec is as the user wrote it");
    const claims = (await env.events(c.subject.metadata?.namespace ?? "", c.subject.metadata?.name ?? "")).filter((e) => /device removed/.test(e.message ?? ""));
    assert.deepEqual(claims.map((e) => e.message), [], "no Event claims a proxy that never existed was removed");
  },
  ignored: async (c) => {
    const subject = await read(c);
    assert.ok(subject, "it exists");
    assert.equal(conditionOf(subject), undefined, "no condition");
    assert.equal(subject.metadata?.finalizers, undefined, "no finalizer");
    assert.deepEqual(await operatorEvents(c), [], "no Event from the operator");
    assert.deepEqual(await env.children(c.subject.metadata?.namespace ?? "", c.subject.metadata?.name ?? ""), [], "no proxy object");
  },
};

/** The operator's objects (any kind a proxy has) whose parent is in one of the namespaces. */
async function childrenIn(namespaces: ReadonlySet<string>): Promise<string[]> {
  const kinds = [["v1", "Secret"], ["v1", "Service"], ["v1", "ServiceAccount"], ["v1", "Pod"], ["apps/v1", "StatefulSet"], ["rbac.authorization.k8s.io/v1", "Role"], ["rbac.authorization.k8s.io/v1", "RoleBinding"]] as const;
  const names: string[] = [];
  for (const [apiVersion, kind] of kinds) {
    const list = await env.objects.list(apiVersion, kind, OPERATOR_NAMESPACE, undefined, undefined, undefined, undefined, "tailscale.com/managed=true");
    names.push(...list.items.filter((o) => namespaces.has(o.metadata?.labels?.["tailscale.com/parent-resource-ns"] ?? "")).map((o) => `${kind}/${o.metadata?.name ?? ""}`));
  }
  return names;
}

describe(`bad-input corpus (${cases.length} cases, test/corpus)`, () => {
  for (const c of cases) {
    it(`${c.file} (${c.expect.outcome}): ${c.description}`, async () => {
      const refusal = refusals.get(c.file);
      if (c.expect.outcome !== "rejected" && refusal !== undefined) assert.fail(`the API server refused the case's object: ${refusal.slice(0, 800)}`);
      await checks[c.expect.outcome](c);
    });
  }
});

describe("after the corpus", () => {
  it("deleting everything releases every object and leaves no child, no device and no usable key", async () => {
    const namespaces = new Set(cases.flatMap((c) => [c.subject, ...c.needs]).filter((o) => o.kind !== "Namespace").map((o) => o.metadata?.namespace ?? ""));
    const hostnames = new Set<string>();
    for (const c of cases) {
      const subject = await read(c);
      const exposedAs = subject && deviceName(conditionOf(subject));
      if (exposedAs) hostnames.add(exposedAs);
      for (const object of [c.subject, ...c.needs].filter((o) => o.kind !== "Namespace")) await env.objects.delete(object).catch(() => undefined);
    }
    await waitFor("every corpus object gone (finalizers released)", async () => {
      for (const c of cases) if (await read(c)) return undefined;
      return true;
    }, { timeoutMs: 180_000, intervalMs: 500 });
    // A proxy's pod may take a moment to go after its StatefulSet.
    const children = await waitFor("no child object of a corpus object", async () => {
      const names = await childrenIn(namespaces);
      return names.length === 0 ? names : undefined;
    }, { timeoutMs: 120_000, intervalMs: 1_000 }).catch(() => childrenIn(namespaces));
    assert.deepEqual(children, [], "no child object of a corpus object");
    for (const hostname of hostnames) assert.deepEqual(await env.devices(hostname), [], `no device ${hostname}`);
    assert.deepEqual(await env.usableKeys(), [], "no unused, unexpired key on the control plane");
    for (const namespace of namespaces) await env.core.deleteNamespace({ name: namespace }).catch(() => undefined);
  });

  it("the operator never restarted and logged no crash", async () => {
    const pods = await env.operatorPods();
    for (const pod of pods) {
      const uid = pod.metadata?.uid ?? "";
      assert.ok(operator.pods.has(uid), `operator pod ${pod.metadata?.name ?? ""} is one that was there before the corpus`);
      assert.equal(restarts(pod), operator.pods.get(uid), `operator pod ${pod.metadata?.name ?? ""} did not restart`);
      const log = await env.core.readNamespacedPodLog({ namespace: OPERATOR_NAMESPACE, name: pod.metadata?.name ?? "", sinceTime: operator.since.toISOString() } as never);
      const lines = log.split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as { level: number; msg: string; key?: string; err?: { message?: string } });
      const errors = lines.filter((line) => line.level >= 50).map((line) => `${line.msg} ${line.key ?? ""} ${line.err?.message?.slice(0, 200) ?? ""}`);
      assert.deepEqual(errors, [], "no error logged");
    }
  });
});
