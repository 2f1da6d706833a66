// make demo: the product in the local sandbox. Starts kube-apiserver, etcd and Headscale, runs
// the operator, applies the manifest users already have (examples/l3-service.yaml, unchanged),
// waits for the Service's EXTERNAL-IP and fetches the page from another tailnet device.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { CoreV1Api, KubernetesObjectApi, loadAllYaml, type KubernetesObject, type V1Service } from "@kubernetes/client-node";
import { Sandbox } from "../sandbox/sandbox.ts";
import { PodRunner } from "../sandbox/pod-runner.ts";
import { projectImageMap } from "../sandbox/images.ts";
import { startOperator } from "../sandbox/operator-process.ts";
import { nodeToolArgv } from "../sandbox/tools.ts";
import { waitFor } from "../shared/clock.ts";

const { values } = parseArgs({ options: { keep: { type: "boolean", default: false }, help: { type: "boolean", short: "h" } } });
if (values.help) {
  process.stdout.write("usage: make demo [ARGS=--keep]\n  --keep  leave the sandbox running until Ctrl-C and print how to reach it\n");
  process.exit(0);
}

const MANIFEST = new URL("../../examples/l3-service.yaml", import.meta.url);
const t0 = Date.now();
const seconds = (since: number): string => `${((Date.now() - since) / 1000).toFixed(1)} s`;
async function step<T>(what: string, work: () => Promise<T>): Promise<T> {
  process.stdout.write(`==> ${what} ... `);
  const started = Date.now();
  const result = await work();
  process.stdout.write(`done (${seconds(started)})\n`);
  return result;
}

const sandbox = await step("starting the sandbox: kube-apiserver, etcd, Headscale", () => Sandbox.start());
try {
  const kc = sandbox.kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  await step("starting tailnet-operator (Headscale control plane) and the pod runner", async () => {
    await core.createNamespace({ body: { metadata: { name: "tailscale" } } });
    sandbox.track(new PodRunner(sandbox, { images: projectImageMap() }).start());
    sandbox.track(await startOperator(sandbox, { id: "demo", httpPort: 18080 }));
  });
  const service = await step("applying examples/l3-service.yaml (the seed manifest, unchanged)", async () => {
    const objects = KubernetesObjectApi.makeApiClient(kc);
    for (const object of loadAllYaml(readFileSync(MANIFEST, "utf8")) as KubernetesObject[]) await objects.create(object);
    const svc = await core.readNamespacedService({ name: "nginx-tailscale", namespace: "tailscaletest" });
    // No kubelet runs nginx here: a sandbox host serves a page on the Service's ClusterIP.
    await sandbox.addBackend({ name: "nginx-tailscale (sandbox stand-in for the nginx pods)", ips: [svc.spec?.clusterIP ?? ""], ports: [80] });
    return svc;
  });
  const created = Date.now();
  const ready = await step("waiting for the Service's EXTERNAL-IP", () =>
    waitFor("EXTERNAL-IP", async () => {
      const svc = await core.readNamespacedService({ name: "nginx-tailscale", namespace: "tailscaletest" });
      return svc.status?.loadBalancer?.ingress?.length ? svc : undefined;
    }, { timeoutMs: 90_000, intervalMs: 100 }),
  );
  const externalIpAfter = seconds(created);
  printServices([ready], service);
  const externalName = ready.status?.loadBalancer?.ingress?.[0]?.hostname ?? "";
  const laptop = await step("joining a laptop to the tailnet", () => sandbox.addDevice("laptop"));
  const url = `http://${externalName}/`;
  const page = await step(`curl ${url} from the laptop`, () =>
    waitFor("the page", async () => (await sandbox.runner.run(laptop.exec(nodeToolArgv("tailnet-client.ts", ["get", url])), { timeoutMs: 10_000 })).stdout, { timeoutMs: 60_000, intervalMs: 250 }),
  );
  const [statusLine, firstLine] = page.split("\n");
  process.stdout.write(`    ${statusLine ?? ""}\n    ${firstLine ?? ""}\n`);
  process.stdout.write(`EXTERNAL-IP ${externalIpAfter} after the Service was created; whole demo ${seconds(t0)}\n`);

  if (values.keep) {
    const hub = sandbox.run.hubNamespace;
    process.stdout.write(
      `\nThe sandbox keeps running until Ctrl-C. From another shell (as root):\n` +
        `  ip netns exec ${laptop.host.namespace.name} ${process.execPath} ${nodeToolArgv("tailnet-client.ts", [])[1] ?? ""} get ${url}\n` +
        `  ip netns exec ${hub} curl -s --cacert ${sandbox.kube.caFile} -H "Authorization: Bearer $(cut -d, -f1 ${sandbox.run.dir}/kube/tokens.csv | head -1)" ${sandbox.kube.server}/api/v1/namespaces/tailscaletest/services/nginx-tailscale\n` +
        `  ${sandbox.bins.headscale} -c ${sandbox.headscale.configFile} nodes list\n` +
        `  operator log: ${sandbox.run.dir}/operator-demo.log\n`,
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
function printServices(services: readonly V1Service[], fallback: V1Service): void {
  const rows = services.map((svc) => {
    const ports = (svc.spec?.ports ?? fallback.spec?.ports ?? []).map((p) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ""}/${p.protocol ?? "TCP"}`).join(",");
    const external = (svc.status?.loadBalancer?.ingress ?? []).map((i) => i.hostname ?? i.ip ?? "").join(",");
    return [svc.metadata?.name ?? "", svc.spec?.type ?? "", svc.spec?.clusterIP ?? "", external || "<pending>", ports];
  });
  const header = ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"];
  const table = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...table.map((r) => (r[i] ?? "").length)) + 3);
  for (const row of table) process.stdout.write(`    ${row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("").trimEnd()}\n`);
}
