// make demo: the product on a real Kubernetes node in the local sandbox. Starts the cluster
// (kube-apiserver, etcd, controller-manager, scheduler, a node with kubelet + containerd +
// kube-proxy, CoreDNS) and Headscale, installs the operator with Helm from the images built
// here, applies the manifest users already have (examples/l3-service.yaml, unchanged), waits for
// nginx's pods and the Service's EXTERNAL-IP, and fetches nginx's page from a tailnet laptop.
// Then the L7 seed (examples/l7-ingress.yaml, unchanged): Headscale issues no certificates, so
// the operator is installed with ACME pointing at Pebble (an ACME CA on a tailnet device), and the
// laptop fetches https://foo.<tailnet>/ verifying the certificate against Pebble's root.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { AppsV1Api, CoreV1Api, KubernetesObjectApi, loadAllYaml, PatchStrategy, type KubernetesObject, type V1Ingress, type V1Service } from "@kubernetes/client-node";
import { Sandbox, TAILNET_DOMAIN } from "../sandbox/sandbox.ts";
import { installOperator, OPERATOR_NAMESPACE } from "../sandbox/operator-install.ts";
import { acmeChartValues, startTailnetAcmeCa } from "../sandbox/tailnet-acme-ca.ts";
import { httpsFromDevice } from "../sandbox/device-https.ts";
import { nodeToolArgv } from "../sandbox/tools.ts";
import { waitFor } from "../shared/clock.ts";

const { values } = parseArgs({ options: { keep: { type: "boolean", default: false }, help: { type: "boolean", short: "h" } } });
if (values.help) {
  process.stdout.write("usage: make demo [ARGS=--keep]\n  --keep  leave the sandbox running until Ctrl-C and print how to reach it\n");
  process.exit(0);
}

const MANIFEST = new URL("../../examples/l3-service.yaml", import.meta.url);
const L7_MANIFEST = new URL("../../examples/l7-ingress.yaml", import.meta.url);
const t0 = Date.now();
const seconds = (since: number): string => `${((Date.now() - since) / 1000).toFixed(1)} s`;
async function step<T>(what: string, work: () => Promise<T>): Promise<T> {
  process.stdout.write(`==> ${what} ...\n`);
  const started = Date.now();
  const result = await work();
  process.stdout.write(`    done (${seconds(started)})\n`);
  return result;
}

const sandbox = await step("starting the sandbox cluster (control plane, a node, CoreDNS) and Headscale", () => Sandbox.start());
try {
  const kc = sandbox.kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const { pebble, rootFile } = await step("starting Pebble, an ACME CA, as a tailnet device (Headscale issues no certificates)", () =>
    startTailnetAcmeCa(sandbox, { hostname: "acme-ca", dir: join(sandbox.run.dir, "demo-acme") }),
  );
  await step(`helm install tailnet-operator (namespace ${OPERATOR_NAMESPACE}, Headscale control plane, images built here, acme.directoryUrl=${pebble.directoryUrl})`, () =>
    installOperator(sandbox, { values: { acme: acmeChartValues(pebble) } }),
  );
  await step("applying examples/l3-service.yaml (the seed manifest, unchanged)", async () => {
    const objects = KubernetesObjectApi.makeApiClient(kc);
    for (const object of loadAllYaml(readFileSync(MANIFEST, "utf8")) as KubernetesObject[]) await objects.create(object);
  });
  const created = Date.now();
  await step("waiting for nginx's two pods", () =>
    waitFor("nginx-tailscale available", async () => {
      const deployment = await apps.readNamespacedDeployment({ name: "nginx-tailscale", namespace: "tailscaletest" });
      return (deployment.status?.availableReplicas ?? 0) >= 2 ? true : undefined;
    }, { timeoutMs: 120_000, intervalMs: 250 }),
  );
  const ready = await step("waiting for the Service's EXTERNAL-IP", () =>
    waitFor("EXTERNAL-IP", async () => {
      const svc = await core.readNamespacedService({ name: "nginx-tailscale", namespace: "tailscaletest" });
      return svc.status?.loadBalancer?.ingress?.length ? svc : undefined;
    }, { timeoutMs: 180_000, intervalMs: 100 }),
  );
  const externalIpAfter = seconds(created);
  printServices([ready]);
  const externalName = ready.status?.loadBalancer?.ingress?.[0]?.hostname ?? "";
  const laptop = await step("joining a laptop to the tailnet", () => sandbox.addDevice("laptop"));
  const url = `http://${externalName}/`;
  const page = await step(`curl ${url} from the laptop (tailnet -> proxy pod -> kube-proxy -> nginx pod)`, () =>
    waitFor("the page", async () => (await sandbox.runner.run(laptop.exec(nodeToolArgv("tailnet-client.ts", ["get", url])), { timeoutMs: 10_000 })).stdout, { timeoutMs: 60_000, intervalMs: 250 }),
  );
  const lines = page.split("\n");
  process.stdout.write(`    ${lines[0] ?? ""}\n    ${lines.find((line) => /<title>/i.test(line))?.trim() ?? ""}\n`);
  process.stdout.write(`EXTERNAL-IP ${externalIpAfter} after the manifest was applied\n`);

  await step("applying examples/l7-ingress.yaml (the seed manifest, unchanged; server-side apply, as its namespace, Deployment and Service exist)", async () => {
    const objects = KubernetesObjectApi.makeApiClient(kc);
    for (const object of loadAllYaml(readFileSync(L7_MANIFEST, "utf8")) as KubernetesObject[]) {
      await objects.patch(object, undefined, undefined, "tailnet-operator-demo", true, PatchStrategy.ServerSideApply);
    }
  });
  const ingressCreated = Date.now();
  let lastMessage = "";
  const ingress = await step("waiting for the Ingress: proxy pod on the tailnet, certificate ordered from Pebble over ACME (HTTP-01 answered on the proxy's tailnet port 80)", () =>
    waitFor("Ingress ready", async () => {
      const found = await KubernetesObjectApi.makeApiClient(kc).read<V1Ingress>({ apiVersion: "networking.k8s.io/v1", kind: "Ingress", metadata: { name: "nginx-tailscale", namespace: "tailscaletest" } });
      const conditions = JSON.parse(found.metadata?.annotations?.["tailscale.com/conditions"] ?? "[]") as { type: string; status: string; message: string }[];
      const ready = conditions.find((c) => c.type === "TailscaleProxyReady");
      if (ready && ready.status !== "True" && ready.message !== lastMessage) process.stdout.write(`    (${ready.message})\n`);
      lastMessage = ready?.message ?? "";
      return ready?.status === "True" ? found : undefined;
    }, { timeoutMs: 300_000, intervalMs: 2_000 }),
  );
  const host = ingress.status?.loadBalancer?.ingress?.[0]?.hostname ?? `foo.${TAILNET_DOMAIN}`;
  process.stdout.write(`    ADDRESS ${host}, ports ${(ingress.status?.loadBalancer?.ingress?.[0]?.ports ?? []).map((p) => p.port).join(",")}\n`);
  const httpsUrl = `https://${host}/`;
  const fetched = await step(`GET ${httpsUrl} from the laptop, verifying the certificate against Pebble's root (tailnet -> Ingress proxy, TLS -> nginx)`, () =>
    waitFor("the HTTPS page", () => httpsFromDevice(sandbox.runner, laptop, httpsUrl, rootFile).catch(() => undefined), { timeoutMs: 60_000, intervalMs: 500 }),
  );
  process.stdout.write(`    HTTP ${fetched.status}, certificate serial ${fetched.serial} (verified), ${fetched.body.split("\n").find((line) => /<title>/i.test(line))?.trim() ?? ""}\n`);
  process.stdout.write(`Ingress served over verified HTTPS ${seconds(ingressCreated)} after the manifest was applied; whole demo ${seconds(t0)}\n`);

  if (values.keep) {
    const inHub = `ip netns exec ${sandbox.run.hubNamespace}`;
    process.stdout.write(
      `\nThe sandbox keeps running until Ctrl-C. From another shell (as root; the cluster is only reachable inside the sandbox):\n` +
        `  ${inHub} kubectl --kubeconfig ${sandbox.kube.adminKubeconfig} get pods -A -o wide\n` +
        `  ${inHub} kubectl --kubeconfig ${sandbox.kube.adminKubeconfig} -n ${OPERATOR_NAMESPACE} logs deploy/tailnet-operator\n` +
        `  ip netns exec ${laptop.host.namespace.name} ${process.execPath} ${nodeToolArgv("tailnet-client.ts", [])[1] ?? ""} get ${url}\n` +
        `  ip netns exec ${laptop.host.namespace.name} ${process.execPath} ${nodeToolArgv("https-client.ts", [])[1] ?? ""} get ${httpsUrl} --ca ${rootFile}\n` +
        `  ${sandbox.bins.headscale} -c ${sandbox.headscale.configFile} nodes list\n`,
    );
    await new Promise<void>((resolve) => {
      for (const signal of ["SIGINT", "SIGTERM"] as const) {
        process.once(signal, () => {
          resolve();
        });
      }
    });
  }
} finally {
  await step("tearing down", () => sandbox.stop());
}

/** The table `kubectl get services -n tailscaletest` prints. */
function printServices(services: readonly V1Service[]): void {
  const rows = services.map((svc) => {
    const ports = (svc.spec?.ports ?? []).map((p) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ""}/${p.protocol ?? "TCP"}`).join(",");
    const external = (svc.status?.loadBalancer?.ingress ?? []).map((i) => i.hostname ?? i.ip ?? "").join(",");
    return [svc.metadata?.name ?? "", svc.spec?.type ?? "", svc.spec?.clusterIP ?? "", external || "<pending>", ports];
  });
  const header = ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"];
  const table = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...table.map((r) => (r[i] ?? "").length)) + 3);
  for (const row of table) process.stdout.write(`    ${row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("").trimEnd()}\n`);
}
