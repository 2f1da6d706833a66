// make demo: starts the sandbox and shows that each real component works, then tears down.
// Until Service exposure lands, the demo shows the foundation: the API server answering, two
// tailnet devices on Headscale, and one fetching a page from the other by its MagicDNS name.
import { parseArgs } from "node:util";
import { CoreV1Api } from "@kubernetes/client-node";
import { Sandbox, TAILNET_DOMAIN } from "../sandbox/sandbox.ts";
import { nodeToolArgv } from "../sandbox/tools.ts";
import { ManagedProcess } from "../shared/process.ts";
import { waitFor } from "../shared/clock.ts";

const { values } = parseArgs({ options: { keep: { type: "boolean", default: false }, help: { type: "boolean", short: "h" } } });
if (values.help) {
  process.stdout.write("usage: make demo [ARGS=--keep]\n  --keep  leave the sandbox running until Ctrl-C and print how to reach it\n");
  process.exit(0);
}

const t0 = Date.now();
const step = async <T>(what: string, work: () => Promise<T>): Promise<T> => {
  process.stdout.write(`==> ${what} ... `);
  const started = Date.now();
  const result = await work();
  process.stdout.write(`done (${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
  return result;
};

const sandbox = await step("starting kube-apiserver, etcd and Headscale", () => Sandbox.start());
try {
  const core = sandbox.kubeConfig().makeApiClient(CoreV1Api);
  const service = await step("creating a Service through the Kubernetes API", async () => {
    await core.createNamespace({ body: { metadata: { name: "demo" } } });
    return core.createNamespacedService({ namespace: "demo", body: { metadata: { name: "web" }, spec: { ports: [{ port: 80 }], selector: { app: "web" } } } });
  });
  process.stdout.write(`    NAMESPACE  NAME  TYPE       CLUSTER-IP   PORT(S)\n    demo       web   ClusterIP  ${service.spec?.clusterIP ?? ""}  80/TCP\n`);

  const [laptop, server] = await step("joining two tailnet devices (laptop, server) to Headscale", () =>
    Promise.all([sandbox.addDevice("laptop"), sandbox.addDevice("server", { tags: ["tag:k8s"] })]),
  );
  for (const device of [laptop, server]) {
    const status = await device.status();
    process.stdout.write(`    ${status.dnsName.padEnd(28)} ${status.tailscaleIps.join(", ")}\n`);
  }
  const serverIp = (await server.status()).tailscaleIps[0] ?? "";
  const page = ManagedProcess.start({
    name: "server page",
    logFile: `${sandbox.run.dir}/demo-server.log`,
    argv: server.exec(nodeToolArgv("http-server.ts", ["--name", "server", "--listen", `${serverIp}:80`])),
  });
  sandbox.track(page);
  const url = `http://server.${TAILNET_DOMAIN}/`;
  const response = await step(`fetching ${url} from the laptop over the tailnet`, () =>
    waitFor("the page", async () => (await sandbox.runner.run(laptop.exec(nodeToolArgv("tailnet-client.ts", ["get", url])))).stdout, { timeoutMs: 20_000 }),
  );
  const [statusLine, firstLine] = response.split("\n");
  process.stdout.write(`    ${statusLine ?? ""}\n    ${firstLine ?? ""}\n`);
  process.stdout.write(`sandbox ${sandbox.run.id} worked end to end in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);

  if (values.keep) {
    const hub = sandbox.run.hubNamespace;
    process.stdout.write(
      `\nThe sandbox keeps running until Ctrl-C. From another shell (as root):\n` +
        `  ip netns exec ${laptop.host.namespace.name} curl -s http://${serverIp}/\n` +
        `  ip netns exec ${hub} curl -s --cacert ${sandbox.kube.caFile} -H "Authorization: Bearer $(cut -d, -f1 ${sandbox.run.dir}/kube/tokens.csv | head -1)" ${sandbox.kube.server}/api/v1/namespaces/demo/services\n` +
        `  ${sandbox.bins.headscale} -c ${sandbox.headscale.configFile} nodes list\n`,
    );
    await new Promise<void>((resolve) => {
      process.once("SIGINT", () => {
        resolve();
      });
      process.once("SIGTERM", () => {
        resolve();
      });
    });
  }
} finally {
  await step("tearing down", () => sandbox.stop());
}
