// An egress proxy: tailscaled plus firewall rules that send the cluster's traffic on the
// Service's ports to a tailnet target. A MagicDNS target is looked up in tailscaled's peers
// and followed when its addresses change; a target that cannot be found is reported in the
// state Secret (the operator shows it in the Service's condition) and looked for again, so
// a device that joins later is picked up without a restart.
import { systemClock } from "../shared/clock.ts";
import type { Logger } from "./log.ts";
import { joinTailnet } from "./login-report.ts";
import { STATE_SECRET_KEYS as STATE_KEYS } from "../shared/state-keys.ts";
import type { EgressPort, EgressTargetReport } from "../shared/egress.ts";
import type { ProxyConfig } from "./config.ts";
import type { Tailscaled } from "./tailscaled.ts";
import type { StateSecretWriter } from "./state-secret.ts";
import type { HealthServer } from "./health.ts";
import { applyOrClear } from "./firewall/select.ts";
import { familyOf, type Firewall, type IpFamily } from "./firewall/rules.ts";
import { egressRules, resolveTarget, targetName, type ConfiguredTarget } from "./egress-target.ts";

/** How often the target is looked up again (the netmap changes when a device re-joins). */
const RESOLVE_INTERVAL_MS = 5_000;

export function isEgress(config: ProxyConfig): boolean {
  return config.TS_TAILNET_TARGET_IP !== undefined || config.TS_TAILNET_TARGET_FQDN !== undefined;
}

function configuredTarget(config: ProxyConfig): ConfiguredTarget {
  return config.TS_TAILNET_TARGET_IP !== undefined ? { ip: config.TS_TAILNET_TARGET_IP } : { fqdn: config.TS_TAILNET_TARGET_FQDN ?? "" };
}

/** A name may resolve to either family; an IP only to its own. */
export function egressFamilies(config: ProxyConfig): IpFamily[] {
  return config.TS_TAILNET_TARGET_IP !== undefined ? [familyOf(config.TS_TAILNET_TARGET_IP)] : [4, 6];
}

export interface EgressDeps {
  /** Chosen (and stale rules cleared) by the caller while tailscaled started. */
  readonly firewall: Firewall;
  readonly firewallReason: string;
  readonly tailscaled: Tailscaled;
  readonly secret: StateSecretWriter;
  readonly health: HealthServer;
  readonly log: Logger;
  readonly stopping: AbortSignal;
}

/** Runs after tailscaled has started; returns when stopping is aborted. The caller clears the rules. */
export async function runEgress(config: ProxyConfig, deps: EgressDeps): Promise<void> {
  const { firewall, tailscaled, secret, health, log, stopping } = deps;
  const target = configuredTarget(config);
  const ports: readonly EgressPort[] = config.TS_EGRESS_PORTS ?? [];
  const { login, device } = await joinTailnet(tailscaled, secret, log);
  log.info({ login, id: device.id, fqdn: device.fqdn, ips: device.ips, target: targetName(target), ports }, "device running; egress proxy");
  await secret.write({ [STATE_KEYS.deviceId]: device.id });
  await secret.write({
    [STATE_KEYS.deviceFqdn]: device.fqdn,
    [STATE_KEYS.deviceIps]: JSON.stringify(device.ips),
    [STATE_KEYS.firewallMode]: firewall.mode,
    [STATE_KEYS.firewallReason]: deps.firewallReason,
  });

  let reported = "";
  while (!stopping.aborted) {
    const report: EgressTargetReport = await tailscaled
      .peers()
      .then((peers) => resolveTarget(target, peers))
      .catch((error: unknown) => ({ target: targetName(target), ips: [], error: `tailscaled status failed: ${(error as Error).message}` }));
    const json = JSON.stringify(report);
    if (json !== reported) {
      // Rules first, then the report: the operator says Ready only once traffic can flow.
      if (report.ips.length > 0) {
        await applyOrClear(firewall, egressRules(config.TS_TUN, report.ips, device.ips, ports));
        log.info({ target: report.target, ips: report.ips }, "egress target resolved; rules applied");
      } else {
        await firewall.clear();
        log.warn({ target: report.target, error: report.error }, "egress target not found; looking again");
      }
      await secret.write({ [STATE_KEYS.egressTarget]: json });
      health.setHealthy(report.ips.length > 0);
      reported = json;
    }
    await systemClock.sleep(RESOLVE_INTERVAL_MS, stopping).catch(() => undefined);
  }
}
