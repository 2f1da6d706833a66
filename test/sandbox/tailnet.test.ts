// Real tailscaled devices join the sandbox's real Headscale and talk to each other.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { attachSandbox, fetchFromDevice, resolveFromDevice } from "../helpers/sandbox.ts";
import { TAILNET_DOMAIN } from "../../src/sandbox/sandbox.ts";
import { nodeToolArgv } from "../../src/sandbox/tools.ts";
import { ManagedProcess } from "../../src/shared/process.ts";
import { waitFor } from "../../src/shared/clock.ts";
import { LocalApi } from "../../src/proxy/local-api.ts";
import { FUNNEL_FORWARD, funnelServeConfig } from "../../src/proxy/l7/funnel.ts";

const sandbox = await attachSandbox();

describe("tailnet devices on Headscale", () => {
  it("join with a tagged pre-auth key, resolve each other by MagicDNS and exchange data directly", async () => {
    const [alpha, beta] = await Promise.all([
      sandbox.addDevice("alpha", { tags: ["tag:k8s"] }),
      sandbox.addDevice("beta", { tags: ["tag:k8s"] }),
    ]);
    const [a, b] = await Promise.all([alpha.status(), beta.status()]);
    assert.equal(a.backendState, "Running");
    assert.match(a.tailscaleIps[0] ?? "", /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./);
    assert.notEqual(a.tailscaleIps[0], b.tailscaleIps[0]);
    assert.equal(b.dnsName, `beta.${TAILNET_DOMAIN}.`);

    const nodes = await sandbox.headscaleAdmin.listNodes();
    const betaNode = nodes.find((node) => node.given_name === "beta");
    assert.deepEqual(betaNode?.tags, ["tag:k8s"]);
    assert.equal(String(betaNode.id), b.id, "the device's stable ID is Headscale's node id");

    assert.deepEqual(await resolveFromDevice(sandbox, alpha, `beta.${TAILNET_DOMAIN}`), [b.tailscaleIps[0]]);
    assert.deepEqual(await resolveFromDevice(sandbox, beta, `alpha.${TAILNET_DOMAIN}`), [a.tailscaleIps[0]]);

    const pong = await alpha.cli(["ping", "--c", "5", b.tailscaleIps[0] ?? ""]);
    // Direct over either family of beta's bridge addresses (hosts are dual-stack), not via DERP.
    const direct = [beta.host.address.replaceAll(".", "\\."), `\\[${beta.host.address6}\\]`].join("|");
    assert.match(pong, new RegExp(`via (${direct}):41641`), "a direct path, not DERP");

    const server = ManagedProcess.start({
      name: "beta http",
      logFile: join(sandbox.run.dir, "beta-http.log"),
      argv: beta.exec(nodeToolArgv("http-server.ts", ["--name", "beta", "--listen", `${b.tailscaleIps[0] ?? ""}:8000`])),
    });
    try {
      const body = await waitFor("beta's server over the tailnet", () => fetchFromDevice(sandbox, alpha, `http://beta.${TAILNET_DOMAIN}:8000/data`).catch(() => undefined), {
        timeoutMs: 15_000,
      });
      assert.match(body, /^HTTP\/1\.1 200 /);
      assert.match(body, /hello from beta\npath=\/data\nremote=([^\n]+)/);
      assert.equal(/remote=([^\n]+)/.exec(body)?.[1], a.tailscaleIps[0], "the request came over the tailnet from alpha");
    } finally {
      await server.stop();
    }
  });

  it("serves port 443 through the Funnel path's serve config: a raw TCP forward to loopback, led by a PROXY v2 header naming the tailnet caller (ADR 0028)", async () => {
    const [host, caller] = await Promise.all([sandbox.addDevice("funnel-host", { tags: ["tag:k8s"] }), sandbox.addDevice("funnel-caller", { user: "alice" })]);
    const [hostStatus, callerStatus] = await Promise.all([host.status(), caller.status()]);
    const fqdn = hostStatus.dnsName.replace(/\.$/, "");
    const listener = ManagedProcess.start({
      name: "funnel listener",
      logFile: join(sandbox.run.dir, "funnel-listener.log"),
      argv: host.exec(nodeToolArgv("proxy-protocol-server.ts", ["--name", "funnel-host", "--listen", `${FUNNEL_FORWARD.host}:${FUNNEL_FORWARD.port}`])),
    });
    const localApi = new LocalApi(host.socket);
    try {
      // The proxy's exact config, as real tailscaled takes it: nothing listens on the tailnet's 443
      // but tailscaled, so an answer there proves the forward.
      await localApi.setServeConfig(funnelServeConfig(fqdn));
      const applied = (await localApi.serveConfig()) as { TCP?: Record<string, { TCPForward?: string; ProxyProtocol?: number }> };
      assert.deepEqual(applied.TCP?.["443"], { TCPForward: `${FUNNEL_FORWARD.host}:${FUNNEL_FORWARD.port}`, ProxyProtocol: 2 });
      const body = await waitFor("the forwarded answer", () => fetchFromDevice(sandbox, caller, `http://${fqdn}:443/`).catch(() => undefined), { timeoutMs: 20_000 });
      assert.match(body, /hello from funnel-host/);
      assert.equal(/proxied-source=(.+):\d+\n/.exec(body)?.[1], callerStatus.tailscaleIps[0], "the header names the tailnet caller");
      assert.match(body, /remote=127\.0\.0\.1\n/, "the connection itself came from tailscaled on loopback");
    } finally {
      await localApi.setServeConfig({}).catch(() => undefined);
      localApi.close();
      await listener.stop();
    }
  });

  it("joins a personal device as its user, untagged", async () => {
    const laptop = await sandbox.addDevice("alice-laptop", { user: "alice" });
    const status = await laptop.status();
    const node = (await sandbox.headscaleAdmin.listNodes()).find((n) => String(n.id) === status.id);
    assert.equal(node?.given_name, "alice-laptop");
    assert.deepEqual(node.tags ?? [], []);
    assert.equal(node.user?.name, "alice");
  });

  it("refuses to join with a key Headscale never issued", async () => {
    const host = await sandbox.network.addHost("dev");
    try {
      const { TailnetDevice } = await import("../../src/sandbox/tailnet-device.ts");
      await assert.rejects(
        TailnetDevice.start({
          runner: sandbox.runner,
          host,
          dir: join(sandbox.run.dir, "devices", "bad-key"),
          tailscaled: sandbox.bins.tailscaled,
          tailscale: sandbox.bins.tailscale,
          loginServer: sandbox.headscale.url,
          authKey: "hskey-auth-not-a-real-key",
          hostname: "intruder",
        }),
        /intruder did not join/,
      );
      const nodes = await sandbox.headscaleAdmin.listNodes();
      assert.ok(!nodes.some((node) => node.given_name === "intruder"));
    } finally {
      await sandbox.network.removeHost(host);
    }
  });
});
