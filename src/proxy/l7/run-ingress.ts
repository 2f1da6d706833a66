// tailnet-proxy for an Ingress (TS_INGRESS_SECRET set): tailscaled with a kernel TUN, and the L7
// server listening on the device's tailnet IPs, so each connection's source address is the
// caller's and whois names them. Routes and certificate follow the ingress Secret; no firewall
// rules are needed (nothing is forwarded at the IP layer).
import { ProcessRunner } from "../../shared/exec.ts";
import { systemClock } from "../../shared/clock.ts";
import type { Logger } from "../log.ts";
import { joinTailnet } from "../login-report.ts";
import { STATE_SECRET_KEYS as STATE_KEYS } from "../../shared/state-keys.ts";
import { INGRESS_SECRET_KEYS, parseIngressConfig, type IngressProxyConfig } from "../../shared/ingress-config.ts";
import type { ProxyConfig } from "../config.ts";
import { Tailscaled, requireTailscaleBinaries } from "../tailscaled.ts";
import { KubeStateSecret } from "../state-secret.ts";
import { HealthServer } from "../health.ts";
import { ensureTunDevice } from "../pod-setup.ts";
import { KubeSecretFollower, type SecretData } from "./ingress-secret.ts";
import { RoutingTable } from "./routing-table.ts";
import { LocalApi } from "../local-api.ts";
import { IdentityCache } from "./identity.ts";
import { createCertificateSource } from "./certificate-sources.ts";
import { L7Server } from "./l7-server.ts";

const PORTS = { https: 443, http: 80 } as const;

/** A fresh tailnet IPv6 address can be unusable for a moment (EADDRNOTAVAIL): try for a while. */
async function listenWithRetry(server: L7Server, address: string, port: number, kind: "https" | "http", log: Logger): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await server.listen(address, port, kind);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EADDRNOTAVAIL" || attempt >= 40) throw error;
      if (attempt === 0) log.info({ address, port }, "address not usable yet; retrying");
      await systemClock.sleep(250);
    }
  }
}

export async function runIngress(config: ProxyConfig, ingressSecret: string, log: Logger): Promise<void> {
  requireTailscaleBinaries(process.env["PATH"] ?? "");
  const runner = new ProcessRunner();
  const health = new HealthServer();
  await health.listen(config.TS_LOCAL_ADDR_PORT);
  const state = new KubeStateSecret(config.TS_KUBE_SECRET);
  if (await ensureTunDevice(runner)) log.info("created /dev/net/tun");
  const tailscaled = new Tailscaled(runner, config);
  // Its own client: whois for new callers must not queue behind a slow certificate request.
  const localApi = new LocalApi(config.TS_SOCKET, { maxSockets: Infinity });
  const identities = new IdentityCache(localApi);

  const stopping = new AbortController();
  const isStopping = (): boolean => stopping.signal.aborted;
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.once(signal, () => {
      log.info({ signal }, "shutting down");
      stopping.abort();
    });
  }
  const outcome = { daemonDied: false };
  let ingress: IngressProxyConfig | undefined;
  let table = new RoutingTable([]);
  const listeners = new Set<(data: SecretData) => void>();
  const server = new L7Server({
    log,
    identity: (address, port) => identities.headersFor(address, port),
    routes: () => table,
    httpRedirect: () => ingress?.httpRedirect ?? false,
    challenges: () => challenges,
  });
  let challenges: ReturnType<typeof createCertificateSource>["challenges"];

  try {
    await tailscaled.start();
    void tailscaled.exited.then(() => {
      outcome.daemonDied = !isStopping();
      stopping.abort();
    });
    const { login, device } = await joinTailnet(tailscaled, state, log);
    log.info({ login, id: device.id, fqdn: device.fqdn, ips: device.ips }, "device running");
    await state.write({ [STATE_KEYS.deviceId]: device.id });

    const follower = new KubeSecretFollower(ingressSecret, log);
    const first = await follower.follow(stopping.signal, (data) => {
      for (const listener of listeners) listener(data);
    });
    const apply = (data: SecretData): void => {
      try {
        ingress = parseIngressConfig(data[INGRESS_SECRET_KEYS.config] ?? "");
        table = new RoutingTable(ingress.routes);
        log.info({ routes: ingress.routes.length, source: ingress.certificateSource, redirect: ingress.httpRedirect }, "routing table loaded");
      } catch (error) {
        // Keep serving the last good table: the operator validated it, so this is a bug or a hand edit.
        log.error({ err: error }, "ignoring an unreadable ingress config");
      }
    };
    apply(first);
    listeners.add(apply);
    if (!ingress) throw new Error(`the ingress Secret ${ingressSecret} holds no valid ${INGRESS_SECRET_KEYS.config}`);

    for (const ip of device.ips) await listenWithRetry(server, ip, PORTS.http, "http", log);
    const chosen = createCertificateSource(ingress.certificateSource, {
      initialSecret: first,
      subscribeSecret: (listener) => listeners.add(listener),
      localApi,
      fqdn: device.fqdn,
    });
    challenges = chosen.challenges;
    const certificate = await chosen.source.start(stopping.signal, (next) => {
      server.setCertificate(next);
      log.info({ source: chosen.source.kind, notAfter: next.notAfter }, "certificate replaced (open connections keep the old one)");
    });
    server.setCertificate(certificate);
    for (const ip of device.ips) await listenWithRetry(server, ip, PORTS.https, "https", log);
    log.info({ source: chosen.source.kind, notAfter: certificate.notAfter, ips: device.ips }, "serving HTTPS");

    await state.write({ [STATE_KEYS.deviceFqdn]: device.fqdn, [STATE_KEYS.deviceIps]: JSON.stringify(device.ips) });
    health.setHealthy(true);
    while (!isStopping()) await systemClock.sleep(5_000, stopping.signal).catch(() => undefined);
  } finally {
    health.setHealthy(false);
    await server.close();
    localApi.close();
    await tailscaled.stop();
    await health.close();
  }
  if (outcome.daemonDied) throw new Error("tailscaled exited");
}
