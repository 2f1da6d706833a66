// The firewall flavours of real nodes, through the whole product: a proxy pod whose firewall
// tools fail as on a kernel without ip_tables (iptables-legacy) or without nf_tables (nft,
// iptables-nft) still forwards, because auto detection probes every backend and picks one that
// works. Inside a container the tools come from the image, so the kernel's side is played by
// the test-only proxy images (images/test/, docs/images.md), installed with a Helm upgrade.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { attachSandbox } from "../helpers/sandbox.ts";
import { ClusterEnv, OPERATOR_NAMESPACE, readyCondition } from "../helpers/cluster-env.ts";
import { installOperator } from "../../src/sandbox/operator-install.ts";
import { readImageIndex, requireImage } from "../../src/sandbox/cluster/image-import.ts";
import { TAILNET_DOMAIN } from "../../src/sandbox/sandbox.ts";
import type { TailnetDevice } from "../../src/sandbox/tailnet-device.ts";
import { proxyName, type ProxyParent } from "../../src/operator/proxy-objects.ts";
import { waitFor } from "../../src/shared/clock.ts";

const sandbox = await attachSandbox();
const env = new ClusterEnv(sandbox);
const images = readImageIndex();
let laptop: TailnetDevice;

before(async () => {
  laptop = await sandbox.addDevice("laptop");
});

// The normal proxy image again, and nothing of a failed case left, for the files that follow.
after(async () => {
  await installOperator(sandbox, { values: { replicaCount: 1 } });
  for (const svc of (await env.core.listNamespacedService({ namespace: "fw-nodes" }).catch(() => ({ items: [] }))).items) {
    await env.core.deleteNamespacedService({ namespace: "fw-nodes", name: svc.metadata?.name ?? "" });
  }
});

interface Flavour {
  readonly image: string;
  readonly kernel: string;
  readonly chosen: RegExp;
  /** What the broken backend's probe said, in the proxy's own log. */
  readonly probeError: RegExp;
}

const FLAVOURS: readonly Flavour[] = [
  {
    image: "proxy-test-legacy-broken",
    kernel: "no working iptables-legacy (ip_tables missing)",
    chosen: /proxy firewall: nftables \(auto: no rules yet; nftables is the first backend that works/,
    probeError: /can't initialize iptables table `nat': Table does not exist \(do you need to insmod\?\)/,
  },
  {
    image: "proxy-test-nft-broken",
    kernel: "a failing nf_tables backend",
    chosen: /proxy firewall: iptables-legacy \(auto: no rules yet; iptables-legacy is the first backend that works/,
    probeError: /Protocol not supported/,
  },
];

describe("proxies on nodes with a broken firewall backend", () => {
  for (const flavour of FLAVOURS) {
    it(`forwards on a node with ${flavour.kernel}`, async () => {
      const { ref } = requireImage(images, flavour.image);
      const tag = ref.slice(ref.lastIndexOf(":") + 1);
      await installOperator(sandbox, { values: { replicaCount: 1, proxy: { image: { tag } } } });

      const parent: ProxyParent = { namespace: "fw-nodes", name: flavour.image.replace("proxy-test-", ""), type: "svc" };
      const hostname = `${parent.namespace}-${parent.name}`;
      await env.webService(parent.namespace, parent.name, { type: "LoadBalancer", loadBalancerClass: "tailscale" });
      const svc = await env.waitForService(parent.namespace, parent.name, "ready", (s) => readyCondition(s)?.status === "True", 180_000).catch(async (error: unknown) => {
        throw new Error(`${(error as Error).message}; condition: ${JSON.stringify(readyCondition((await env.service(parent.namespace, parent.name)) ?? {}))}; proxy log: ${await env.podLogTail(OPERATOR_NAMESPACE, `${proxyName(parent)}-0`)}`);
      });
      assert.equal(svc.status?.loadBalancer?.ingress?.[0]?.hostname, `${hostname}.${TAILNET_DOMAIN}`);

      const pod = await env.pod(OPERATOR_NAMESPACE, `${proxyName(parent)}-0`);
      assert.equal(pod?.spec?.containers[0]?.image, ref, "the proxy runs the test image");
      const log = await env.podLogTail(OPERATOR_NAMESPACE, `${proxyName(parent)}-0`, 2000);
      assert.match(log, flavour.probeError, "the broken backend really failed its probe in the pod");

      const ready = await env.waitForEvent(parent.namespace, parent.name, "ProxyReady", (e) => e.reason === "ProxyReady");
      assert.match(ready.message ?? "", flavour.chosen);
      assert.match(await env.fetch(laptop, `http://${hostname}.${TAILNET_DOMAIN}/`), /^HTTP\/1\.1 200 OK[\s\S]*nginx/i);

      assert.equal((await env.devices(hostname)).length, 1);
      await env.core.deleteNamespacedService({ namespace: parent.namespace, name: parent.name });
      await waitFor(`${parent.namespace}/${parent.name} to be deleted`, async () => ((await env.service(parent.namespace, parent.name)) ? undefined : true), { timeoutMs: 120_000 });
      assert.deepEqual(await env.devices(hostname), [], "the device is gone from the tailnet");
      assert.deepEqual(await env.children(parent.namespace, parent.name), [], "nothing of the proxy is left");
    });
  }
});
