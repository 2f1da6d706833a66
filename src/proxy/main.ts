// tailnet-proxy: runs tailscaled (kernel TUN) beside the proxy logic, logs in once, forwards
// traffic for the device's tailnet IPs to the Service's ClusterIP(s), reports the device in the
// state Secret, and on SIGTERM removes its rules and stops tailscaled.
import { readFileSync } from "node:fs";
import { answerInfoFlags } from "../shared/cli-info.ts";
import { createProxyLogger } from "./log.ts";
import { ProcessRunner } from "../shared/exec.ts";
import { systemClock } from "../shared/clock.ts";
import { loadProxyConfig, proxyHelp, type ProxyConfig } from "./config.ts";
import { Tailscaled, logRestart, requireTailscaleBinaries, type DeviceInfo } from "./tailscaled.ts";
import { KubeStateSecret } from "./state-secret.ts";
import { STATE_SECRET_KEYS as STATE_KEYS } from "../shared/state-keys.ts";
import { HealthServer } from "./health.ts";
import { applyOrClear, chooseFirewall, clearStaleRules } from "./firewall/select.ts";
import { familyOf, type Firewall, type ForwardingRules, type IpFamily } from "./firewall/rules.ts";
import { ensureTunDevice, writeSysctls } from "./pod-setup.ts";
import { egressFamilies, isEgress, runEgress } from "./egress.ts";
import { joinTailnet } from "./login-report.ts";
import { holdUntilReachable } from "./reachable.ts";

// Only what the long-running proxy uses is imported statically: every module stays in memory
// in every proxy pod (docs/proxy.md, "Footprint"); doctor is loaded when asked for.
const log = createProxyLogger({ name: "tailnet-proxy" });

function forwardingRules(config: ProxyConfig, device: DeviceInfo): ForwardingRules {
  // Each tailnet IP forwards to the destination of its own family (IPv4 to IPv4, IPv6 to IPv6).
  const ingress = device.ips.flatMap((tailnetIp) =>
    config.TS_DEST_IP.filter((dest) => familyOf(dest) === familyOf(tailnetIp)).map((destination) => ({ tailnetIp, destination })),
  );
  return { tunInterface: config.TS_TUN, ingress };
}

async function run(config: ProxyConfig): Promise<void> {
  requireTailscaleBinaries(process.env["PATH"] ?? "");
  const runner = new ProcessRunner();
  const health = new HealthServer();
  await health.listen(config.TS_LOCAL_ADDR_PORT);
  const secret = new KubeStateSecret(config.TS_KUBE_SECRET);
  if (await ensureTunDevice(runner)) log.info("created /dev/net/tun");
  const tailscaled = new Tailscaled(runner, config);
  const families = isEgress(config) ? egressFamilies(config) : ([...new Set(config.TS_DEST_IP.map(familyOf))] as IpFamily[]);
  // Looking at the host's firewall takes about a second: it runs while tailscaled starts.
  const choosing = chooseFirewall(runner, config.TS_DEBUG_FIREWALL_MODE, families);
  choosing.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
  let firewall: Firewall | undefined;
  warnIfNotForwarding(families);

  const stopping = new AbortController();
  const isStopping = (): boolean => stopping.signal.aborted;
  const shutdown = (signal: string): void => {
    log.info({ signal }, "shutting down");
    stopping.abort();
  };
  // The entry point's start-up handlers (bin/tailnet-proxy.js) give way to the graceful ones.
  process.removeAllListeners("SIGTERM").removeAllListeners("SIGINT");
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
  const outcome = { daemonDied: false };

  try {
    await tailscaled.start(logRestart(log));
    void tailscaled.exited.then(() => {
      // tailscaled gone on its own: stop too, and exit non-zero so the pod restarts.
      outcome.daemonDied = !isStopping();
      stopping.abort();
    });
    const choice = await choosing;
    firewall = choice.firewall;
    log.info({ mode: firewall.mode, reason: choice.reason, probes: choice.probes }, "firewall backend chosen");
    // A previous instance killed with SIGKILL (the pod's namespace outlives a container restart)
    // may have left rules; they are ours to remove, in whichever backend it used.
    await clearStaleRules(runner, choice.probes, families);
    if (isEgress(config)) {
      await runEgress(config, { firewall, firewallReason: choice.reason, tailscaled, secret, health, log, stopping: stopping.signal });
      if (outcome.daemonDied) throw new Error("tailscaled exited");
      return;
    }
    const joined = await joinTailnet(tailscaled, secret, log);
    const login = joined.login;
    let device = joined.device;
    log.info({ login, id: device.id, fqdn: device.fqdn, ips: device.ips }, "device running");
    // Forwarding throughput (docs/proxy.md, Data path): a failure costs speed, not function.
    await tailscaled.tuneForwarding().then(
      (warning) => {
        if (warning) log.warn({ warning }, "UDP GRO forwarding not enabled");
        else log.info("UDP GRO forwarding enabled on the default interface");
      },
      (error: unknown) => {
        log.warn({ err: error }, "UDP GRO forwarding not enabled");
      },
    );
    // Same order as the Tailscale operator: the ID first, the address only once traffic can flow.
    await secret.write({ [STATE_KEYS.deviceId]: device.id });
    await applyOrClear(firewall, forwardingRules(config, device)).catch(async (error: unknown) => {
      // The operator shows this on the Service: a proxy on the tailnet that forwards nothing.
      await secret.write({ [STATE_KEYS.firewallMode]: firewall?.mode ?? null, [STATE_KEYS.firewallError]: (error as Error).message.slice(0, 600) }).catch(() => undefined);
      throw error;
    });
    // The address is published (and the Service's status set) only once peers can reach us.
    await holdUntilReachable(config.TS_SOCKET, log);
    await secret.write({
      [STATE_KEYS.deviceFqdn]: device.fqdn,
      [STATE_KEYS.deviceIps]: JSON.stringify(device.ips),
      [STATE_KEYS.firewallMode]: firewall.mode,
      [STATE_KEYS.firewallReason]: choice.reason,
      [STATE_KEYS.firewallError]: null,
    });
    health.setHealthy(true);

    // Follow address changes until asked to stop or tailscaled dies (then the pod restarts).
    while (!isStopping()) {
      await systemClock.sleep(5_000, stopping.signal).catch(() => undefined);
      if (isStopping()) break;
      const current = await tailscaled.device().catch(() => device);
      if (JSON.stringify(current) !== JSON.stringify(device)) {
        log.info({ ips: current.ips }, "device changed; re-applying rules");
        device = current;
        await applyOrClear(firewall, forwardingRules(config, device));
        await secret.write({ [STATE_KEYS.deviceFqdn]: device.fqdn, [STATE_KEYS.deviceIps]: JSON.stringify(device.ips) });
      }
    }
  } finally {
    health.setHealthy(false);
    await firewall?.clear().catch((error: unknown) => {
      log.error({ err: error }, "removing firewall rules failed");
    });
    secret.close();
    await tailscaled.stop();
    await health.close();
  }
  if (outcome.daemonDied) throw new Error("tailscaled exited");
}

/** Forwarding is the pod's sysctl (docs/proxy.md); without it the rules forward nothing. */
function warnIfNotForwarding(families: readonly IpFamily[]): void {
  const files = { 4: "/proc/sys/net/ipv4/ip_forward", 6: "/proc/sys/net/ipv6/conf/all/forwarding" } as const;
  for (const family of families) {
    const value = readFileSync(files[family], "utf8").trim();
    if (value !== "1") log.warn({ family, sysctl: files[family], value }, "IP forwarding is off in this pod: the operator's init container (or pod sysctls) should have set it");
  }
}

const args = process.argv.slice(2);
if (args[0] === "init") {
  try {
    log.info({ set: await writeSysctls(args.slice(1)) }, "forwarding sysctls set");
  } catch (error) {
    log.error({ err: error }, "init failed");
    process.exitCode = 1;
  }
} else if (args[0] === "doctor") {
  const { runDoctor } = await import("./doctor.ts");
  process.exitCode = await runDoctor(new ProcessRunner(), process.env, args.includes("--json"));
} else if (!answerInfoFlags(args, proxyHelp())) {
  try {
    const config = loadProxyConfig(process.env);
    // L7 loads its HTTP/2 server and Kubernetes client only in L7 proxies (docs/adr/0013).
    if (config.TS_INGRESS_SECRET) await (await import("./l7/run-ingress.ts")).runIngress(config, config.TS_INGRESS_SECRET, log);
    else await run(config);
  } catch (error) {
    // The message last on the line: the termination message (the log's tail) keeps it.
    log.error({ err: error }, `proxy failed: ${(error as Error).message}`);
    process.exitCode = 1;
  }
}
