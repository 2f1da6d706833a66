// The operator as a process: it converges after being killed mid-provisioning, and of two
// replicas only the Lease holder acts, with the standby taking over when the leader dies.
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { attachSandbox } from "../helpers/sandbox.ts";
import { OperatorEnv, readyCondition } from "../helpers/operator-env.ts";
import { httpGet } from "../../src/sandbox/https-probe.ts";
import { waitFor } from "../../src/shared/clock.ts";
import type { OperatorProcess } from "../../src/sandbox/operator-process.ts";

const sandbox = await attachSandbox();
const env = new OperatorEnv(sandbox);
// Short leases keep take-over quick; retries run at a fifth of the lease.
const FAST_LEASE = { LEASE_DURATION_SECONDS: "3" };

before(() => env.setUp());

async function isLeader(op: OperatorProcess): Promise<boolean> {
  const metrics = await httpGet(`${op.httpUrl}/metrics`);
  return /^tailnet_operator_is_leader 1$/m.test(metrics.body);
}

async function exposedService(namespace: string, name: string): Promise<void> {
  await env.core.createNamespace({ body: { metadata: { name: namespace } } }).catch(() => undefined);
  const svc = await env.core.createNamespacedService({
    namespace,
    body: { metadata: { name }, spec: { type: "LoadBalancer", loadBalancerClass: "tailscale", ports: [{ port: 80 }], selector: { app: name } } },
  });
  await sandbox.addBackend({ name, ips: [svc.spec?.clusterIP ?? ""], ports: [80] });
}

describe("operator runtime", () => {
  it("converges without duplicates after being killed in the middle of provisioning", async () => {
    const first = await env.startOperator("crashy", 18101, FAST_LEASE);
    await exposedService("crash", "web");
    // Kill it as soon as it has minted the key: the proxy is half made.
    await waitFor("the config Secret", async () => ((await env.children("crash", "web")).some((c) => c.endsWith("-config")) ? true : undefined), { timeoutMs: 20_000, intervalMs: 20 });
    first.process.signal("SIGKILL");
    await first.process.exited;

    const second = sandbox.track(await env.startOperator("recovery", 18102, FAST_LEASE));
    const svc = await env.waitForService("crash", "web", "ready after the restart", (s) => readyCondition(s)?.status === "True");
    const children = await env.children("crash", "web");
    assert.deepEqual(
      children.map((c) => c.replace(/ts-web-[0-9a-f]+/, "X")),
      ["Secret/X-0", "Secret/X-config", "Service/X", "StatefulSet/X"],
      "one of each child, no duplicates",
    );
    assert.equal((await env.nodes("crash-web")).length, 1, "one device on the tailnet");
    assert.equal(svc.status?.loadBalancer?.ingress?.[0]?.hostname, "crash-web.tailnet.test");
    await second.stop();
  });

  it("lets only the Lease holder act, and the standby take over when the leader dies", async () => {
    const a = sandbox.track(await env.startOperator("replica-a", 18103, FAST_LEASE));
    const b = sandbox.track(await env.startOperator("replica-b", 18104, FAST_LEASE));
    const leader = await waitFor("one leader", async () => {
      const [la, lb] = [await isLeader(a), await isLeader(b)];
      assert.ok(!(la && lb), "never two leaders");
      return la ? a : lb ? b : undefined;
    }, { timeoutMs: 15_000 });
    const standby = leader === a ? b : a;
    assert.equal(await isLeader(standby), false);
    assert.equal((await httpGet(`${standby.httpUrl}/readyz`)).status, 200, "a standby is ready to take over");

    leader.process.signal("SIGKILL");
    await waitFor("the standby to lead", async () => ((await isLeader(standby)) ? true : undefined), { timeoutMs: 15_000 });
    await exposedService("failover", "web");
    await env.waitForService("failover", "web", "ready under the new leader", (s) => readyCondition(s)?.status === "True");
    const reconciles = (await httpGet(`${standby.httpUrl}/metrics`)).body;
    assert.match(reconciles, /tailnet_operator_reconcile_total\{controller="service",result="success"\} [1-9]/);
  });
});
