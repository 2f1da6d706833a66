// The ACME certificate source against a real ACME CA: Pebble runs as a tailnet device and
// validates HTTP-01 for real, resolving the proxy's MagicDNS name through tailscaled and
// connecting to it over the tailnet. A device plays the proxy (test/fixtures/acme-proxy.ts), a
// laptop fetches https://<its name>/ trusting Pebble's root. Certificates live 60 s, so a renewal
// happens within the test.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { attachSandbox } from "../helpers/sandbox.ts";
import { TAILNET_DOMAIN } from "../../src/sandbox/sandbox.ts";
import { PEBBLE_ACME_PORT } from "../../src/sandbox/pebble.ts";
import { startTailnetAcmeCa } from "../../src/sandbox/tailnet-acme-ca.ts";
import { ManagedProcess } from "../../src/shared/process.ts";
import { waitFor } from "../../src/shared/clock.ts";
import type { TailnetDevice } from "../../src/sandbox/tailnet-device.ts";

const sandbox = await attachSandbox();
const dir = join(sandbox.run.dir, "acme");
const [{ device: pebbleDevice, pebble, rootFile }, web, laptop] = await Promise.all([
  startTailnetAcmeCa(sandbox, { hostname: "pebble", dir, profiles: { default: 90 * 24 * 3600, shortlived: 60 } }),
  // Not "web": other files' proxies take plain names, and a MagicDNS name stays with the first
  // device that had it for as long as that node is registered.
  sandbox.addDevice("acme-web", { tags: ["tag:k8s"] }),
  sandbox.addDevice("laptop", { user: "alice" }),
]);
const bundleFile = join(dir, "pebble-api-ca.pem");
await writeFile(bundleFile, pebble.apiCaPem);
const webName = `acme-web.${TAILNET_DOMAIN}`;
const webIps = (await web.status()).tailscaleIps;
const pebbleIp = (await pebbleDevice.status()).tailscaleIps.find((ip) => !ip.includes(":")) ?? "";
const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

interface ProxyEvent {
  readonly event: "serving" | "failed" | "challenge";
  readonly serial?: string;
  readonly notAfter?: string;
  readonly message?: string;
  readonly answered?: boolean;
  readonly from?: string;
}

let proxyRuns = 0;
/** Starts the "proxy" in web's namespace; its events are read back from its log. */
function startProxy(options: { store: string; directory?: string; caBundle?: boolean; domain?: string; maxOrders?: number }) {
  const logFile = join(dir, `proxy-${++proxyRuns}.log`);
  const args = [
    "--directory", options.directory ?? pebble.directoryUrl,
    "--domain", options.domain ?? webName,
    "--store", options.store,
    "--listen", webIps.join(","),
    "--profile", "shortlived",
    "--email", "ops@example.com",
    ...(options.caBundle === false ? [] : ["--ca-bundle", bundleFile]),
    ...(options.maxOrders === undefined ? [] : ["--max-orders", String(options.maxOrders)]),
  ];
  const proc = ManagedProcess.start({ name: "acme-proxy", logFile, group: true, argv: web.exec([process.execPath, fixture("acme-proxy.ts"), ...args]) });
  const events = async (): Promise<ProxyEvent[]> =>
    (await readFile(logFile, "utf8").catch(() => ""))
      .split("\n")
      .filter((line) => line.startsWith('{"at"'))
      .map((line) => JSON.parse(line) as ProxyEvent);
  /** The nth "serving" event (1-based), or the failure if the proxy gave up first. */
  const serving = (n: number, timeoutMs = 30_000): Promise<ProxyEvent> =>
    waitFor(`proxy run ${proxyRuns}: serving #${n}`, async () => {
      const all = await events();
      const failed = all.find((event) => event.event === "failed");
      if (failed) return failed;
      if (!proc.running) throw new Error(`the proxy exited:\n${proc.logTail()}`);
      return all.filter((event) => event.event === "serving")[n - 1];
    }, { timeoutMs, intervalMs: 250 }).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\n${proc.logTail(40)}\npebble:\n${pebble.logTail()}`);
    });
  return { proc, events, serving, stop: () => proc.stop() };
}

async function fetchFrom(device: TailnetDevice, holdSeconds = 0): Promise<{ status: number; serial: string; notAfter: string; sameConnection: boolean }> {
  const { stdout } = await sandbox.runner.run(
    device.exec([process.execPath, fixture("tls-client.ts"), `https://${webName}/`, "--ca", rootFile, "--hold-seconds", String(holdSeconds)]),
    { timeoutMs: 20_000 },
  );
  return JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as { status: number; serial: string; notAfter: string; sameConnection: boolean };
}

describe("ACME certificates from Pebble on the tailnet", () => {
  const store = join(dir, "store-web");
  let firstSerial = "";

  it("issues over a real HTTP-01 validation, and a tailnet client verifies it with Pebble's root", async (t) => {
    const started = Date.now();
    const proxy = startProxy({ store });
    try {
      const served = await proxy.serving(1);
      // A figure, not an assertion: proxy start to a served certificate (account, order, HTTP-01, issuance).
      t.diagnostic(`first certificate served ${((Date.now() - started) / 1000).toFixed(1)} s after the proxy started`);
      assert.equal(served.event, "serving", served.message);
      firstSerial = served.serial ?? "";
      assert.deepEqual(await pebble.issuedSerials(), [firstSerial], "Pebble issued exactly this certificate");
      const challenges = (await proxy.events()).filter((event) => event.event === "challenge" && event.answered);
      assert.ok(challenges.length > 0, "Pebble fetched the challenge from the proxy's port 80");
      assert.ok(challenges.every((event) => (event.from ?? "").replace(/^::ffff:/, "").startsWith("100.") || (event.from ?? "").startsWith("fd7a:")),
        `the validation came over the tailnet: ${JSON.stringify(challenges)}`);
      const response = await waitFor("the laptop's HTTPS request", () => fetchFrom(laptop).catch(() => undefined), { timeoutMs: 15_000 });
      assert.equal(response.status, 200);
      assert.equal(response.serial, firstSerial);
    } finally {
      await proxy.stop();
    }
  });

  it("a restart with the same store serves the stored certificate without ordering again", async (t) => {
    const before = (await pebble.issuedSerials()).length;
    const started = Date.now();
    const proxy = startProxy({ store });
    const holdLog = join(dir, "hold-client.log");
    let hold: ManagedProcess | undefined;
    try {
      const served = await proxy.serving(1);
      t.diagnostic(`stored certificate served ${((Date.now() - started) / 1000).toFixed(1)} s after the restart`);
      assert.equal(served.serial, firstSerial, "the stored certificate is served");
      assert.equal((await pebble.issuedSerials()).length, before, "no new certificate was issued");
      assert.equal((await fetchFrom(laptop)).serial, firstSerial);

      // Renewal (at two thirds of the 60 s lifetime, ARI permitting) while a connection stays open.
      hold = ManagedProcess.start({
        name: "hold client",
        logFile: holdLog,
        argv: laptop.exec([process.execPath, fixture("tls-client.ts"), `https://${webName}/`, "--ca", rootFile, "--hold-seconds", "90"]),
      });
      const renewed = await proxy.serving(2, 70_000);
      assert.equal(renewed.event, "serving", renewed.message);
      assert.notEqual(renewed.serial, firstSerial);
      assert.ok(new Date(renewed.notAfter ?? 0) > new Date(served.notAfter ?? 0), "the new certificate expires later");
      assert.ok((await pebble.issuedSerials()).includes(renewed.serial ?? ""));
      assert.match(await pebble.log(), /ARI: order "[^"]+" is a replacement of/, "the renewal order named the certificate it replaces (ARI)");
      const fresh = await fetchFrom(laptop);
      assert.equal(fresh.serial, renewed.serial, "new connections get the renewed certificate");
      // The held connection went on working across the renewal, on its original certificate.
      await waitFor("a request on the held connection after the renewal", async () => {
        const lines = (await readFile(holdLog, "utf8")).trim().split("\n").filter((line) => line.startsWith("{"));
        const after = lines.map((line) => JSON.parse(line) as { at: string; status: number; serial: string; sameConnection: boolean });
        return after.some((line) => line.at > (renewed as { at?: string }).at!) ? after : undefined;
      }, { timeoutMs: 5_000 }).then((lines) => {
        assert.ok(lines.length >= 2);
        assert.ok(lines.every((line) => line.status === 200 && line.sameConnection && line.serial === firstSerial), JSON.stringify(lines));
      });
    } finally {
      await hold?.stop();
      await proxy.stop();
    }
  });

  it("the order limit, counted in the store, stops a loop of forced re-issues", async () => {
    const loopStore = join(dir, "store-loop");
    const serials: string[] = [];
    for (let run = 1; run <= 3; run++) {
      // The certificate is lost each time (as if the state Secret kept losing it); the order
      // history survives, as it does in the Secret.
      await rm(join(loopStore, "acme-certificate.json"), { force: true });
      const issuedBefore = (await pebble.issuedSerials()).length;
      const proxy = startProxy({ store: loopStore, maxOrders: 2 });
      try {
        const result = await proxy.serving(1);
        if (run <= 2) {
          assert.equal(result.event, "serving", result.message);
          serials.push(result.serial ?? "");
          assert.equal((await pebble.issuedSerials()).length, issuedBefore + 1);
        } else {
          assert.equal(result.event, "failed");
          assert.match(result.message ?? "", /limit of 2 orders per 1 hour\(s\) is reached \(counted across restarts\); the next order is allowed at \d{4}-/);
          assert.equal((await pebble.issuedSerials()).length, issuedBefore, "no order reached the CA");
        }
      } finally {
        await proxy.stop();
      }
    }
    assert.notEqual(serials[0], serials[1]);
  });

  it("failures say what to fix: CA unreachable, CA not trusted, validation refused with the CA's reason", async () => {
    const cases = [
      {
        options: { directory: `https://${pebbleIp}:${PEBBLE_ACME_PORT + 1}/dir` },
        expect: /cannot reach the ACME CA at https:\/\/.*ECONNREFUSED.*check the directory URL/,
      },
      { options: { caBundle: false }, expect: /HTTPS certificate of the ACME CA at .* is not trusted .*set the ACME CA bundle/ },
      {
        // The laptop's name resolves, but nothing answers on its port 80.
        options: { domain: `laptop.${TAILNET_DOMAIN}` },
        expect: /the ACME CA could not validate laptop\.tailnet\.test: .*(refused|connect).*; the CA must reach http:\/\/laptop\.tailnet\.test\/\.well-known\/acme-challenge\//,
      },
    ];
    let index = 0;
    for (const { options, expect } of cases) {
      const proxy = startProxy({ store: join(dir, `store-failure-${++index}`), ...options });
      try {
        const result = await proxy.serving(1);
        assert.equal(result.event, "failed");
        assert.match(result.message ?? "", expect);
      } finally {
        await proxy.stop();
      }
    }
  });
});
