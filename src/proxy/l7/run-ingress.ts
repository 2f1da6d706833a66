// tailnet-proxy for an Ingress or the API server (TS_INGRESS_SECRET set): tailscaled with a
// kernel TUN, and HTTPS served on the device's tailnet IPs, so each connection's source address is
// the caller's and whois names them: by nginx for an Ingress's routes (ADR 0035), by the L7 server
// where only it can (the API server, TLS-ALPN-01, plain HTTP, Funnel's forwarded connections; and
// port 80 always). Routes and certificate follow the ingress Secret
// (for the API server proxy: its mode, and no routes); no firewall rules are needed (nothing is
// forwarded at the IP layer).
import { createServer } from "node:net";
import { join } from "node:path";
import { ProcessRunner } from "../../shared/exec.ts";
import { systemClock } from "../../shared/clock.ts";
import type { Logger } from "../log.ts";
import { joinTailnet } from "../login-report.ts";
import { holdUntilReachable } from "../reachable.ts";
import { FUNNEL_ON, STATE_SECRET_KEYS as STATE_KEYS } from "../../shared/state-keys.ts";
import { INGRESS_SECRET_KEYS, httpsEngine, parseIngressConfig, type IngressProxyConfig } from "../../shared/ingress-config.ts";
import type { ProxyConfig } from "../config.ts";
import { Tailscaled, logRestart, requireTailscaleBinaries } from "../tailscaled.ts";
import { KubeStateSecret } from "../state-secret.ts";
import { HealthServer } from "../health.ts";
import { ensureTunDevice } from "../pod-setup.ts";
import { KubeSecretFollower, type SecretData } from "./ingress-secret.ts";
import { RoutingTable } from "./routing-table.ts";
import { LocalApi } from "../local-api.ts";
import { WhoisCache } from "./identity.ts";
import { createCertificateSource } from "./certificate-sources.ts";
import { CertificateSupervisor } from "./certificate-supervisor.ts";
import { KeyValueCertificateStore } from "../tls/certificate-store.ts";
import { L7Server } from "./l7-server.ts";
import { FUNNEL_FORWARD, reconcileFunnel } from "./funnel.ts";
import { IngressUpstream } from "./ingress-upstream.ts";
import type { UpstreamPolicy } from "./upstream.ts";
import { HEADERS_MORE_MODULE, NginxEngine } from "./nginx-engine.ts";
import { nginxConfig } from "./nginx-config.ts";
import { WhoisEndpoint } from "./whois-endpoint.ts";
import { ApiServerUpstream, inClusterApiServer, type InClusterApiServer } from "../apiserver/apiserver-upstream.ts";

const PORTS = { https: 443, http: 80 } as const;

/** Binds and releases a port on address: fails (EADDRNOTAVAIL) while the address is not usable yet. */
function bindOnce(address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen({ host: address, port: 0 }, () => probe.close(() => { resolve(); }));
  });
}

/** A fresh tailnet IPv6 address can be unusable for a moment (EADDRNOTAVAIL): try for a while. */
async function listenWithRetry(listen: () => Promise<unknown>, address: string, port: number, log: Logger): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await listen();
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
  const identities = new WhoisCache(localApi);
  const ingressUpstream = new IngressUpstream(() => table, (address, port) => identities.headersFor(address, port));
  let apiServer: { mode: string; upstream: ApiServerUpstream } | undefined;
  let inCluster: InClusterApiServer | undefined;
  // The policy follows the config: an Ingress's routes, or the API server in the mode asked for.
  const upstream: UpstreamPolicy = {
    decide: (call) => {
      const mode = ingress?.apiServer?.mode;
      if (!mode) return ingressUpstream.decide(call);
      if (apiServer?.mode !== mode) {
        inCluster ??= inClusterApiServer();
        apiServer = { mode, upstream: new ApiServerUpstream(mode, inCluster, (address, port) => identities.whois(address, port)) };
      }
      return apiServer.upstream.decide(call);
    },
  };

  const stopping = new AbortController();
  const isStopping = (): boolean => stopping.signal.aborted;
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.removeAllListeners(signal); // the entry point's start-up handler (bin/tailnet-proxy.js)
    process.once(signal, () => {
      log.info({ signal }, "shutting down");
      stopping.abort();
    });
  }
  const outcome = { daemonDied: false, nginxDied: false };
  // nginx serves HTTPS where the first config says so (httpsEngine); created once that is known.
  let nginx: NginxEngine | undefined;
  let whoisEndpoint: WhoisEndpoint | undefined;
  let ingress: IngressProxyConfig | undefined;
  let table = new RoutingTable([]);
  const listeners = new Set<(data: SecretData) => void>();
  const server = new L7Server({
    log,
    upstream,
    plainHttp: () => ingress?.certificateSource === "none",
    httpRedirect: () => ingress?.httpRedirect ?? false,
    challenges: () => certificates?.challenges(),
  });
  let certificates: CertificateSupervisor | undefined;
  // The ACME account, certificate and order history live beside tailscaled's state, so a
  // restarted pod serves what it has instead of ordering again (ADR 0012).
  const acmeStore = new KeyValueCertificateStore({
    get: async (key) => (await state.read())[key],
    set: (key, value) => state.write({ [key]: value }),
  });

  try {
    await tailscaled.start(logRestart(log));
    void tailscaled.exited.then(() => {
      outcome.daemonDied = !isStopping();
      stopping.abort();
    });
    const { login, device } = await joinTailnet(tailscaled, state, log);
    log.info({ login, id: device.id, fqdn: device.fqdn, ips: device.ips }, "device running");
    await state.write({ [STATE_KEYS.deviceId]: device.id });

    const supervisor = new CertificateSupervisor({
      log,
      clock: systemClock,
      create: (config, data) =>
        createCertificateSource(config.certificateSource, {
          initialSecret: data,
          subscribeSecret: (listener) => listeners.add(listener),
          localApi,
          fqdn: device.fqdn,
          acme: config.acme,
          acmeStore,
          logger: log,
        }),
      serve: (certificate) => {
        server.setCertificate(certificate);
        nginx?.setCertificate(certificate).catch((error: unknown) => {
          log.error({ err: error }, "cannot write the certificate for nginx; it serves the previous one");
        });
      },
      report: (problem) =>
        state.write({ [STATE_KEYS.certificateError]: problem }).catch((error: unknown) => {
          log.warn({ err: error }, "cannot report the certificate state to the state Secret");
        }),
      // Once the served certificate has expired, a failing renewal is the Ingress's failure too.
      reportRenewal: (problem) =>
        state.write({
          [STATE_KEYS.certificateRenewalError]: problem?.message ?? null,
          ...(problem === null ? { [STATE_KEYS.certificateError]: null } : problem.expired ? { [STATE_KEYS.certificateError]: problem.message } : {}),
        }).catch((error: unknown) => {
          log.warn({ err: error }, "cannot report the certificate state to the state Secret");
        }),
    });
    certificates = supervisor;
    stopping.signal.addEventListener("abort", () => { supervisor.stop(); }, { once: true });

    const follower = new KubeSecretFollower(ingressSecret, log);
    const first = await follower.follow(stopping.signal, (data) => {
      for (const listener of listeners) listener(data);
    });
    // Funnel follows the config, one change at a time (each is a LocalAPI round trip or two).
    let funnelling: Promise<void> = Promise.resolve();
    let proxiedListening = false;
    let httpsServing = false;
    const followFunnel = (wanted: boolean): void => {
      funnelling = funnelling.then(async () => {
        const reported = await reconcileFunnel({
          localApi,
          wanted,
          fqdn: device.fqdn,
          listen: async () => {
            if (proxiedListening) return;
            await server.listenProxied(FUNNEL_FORWARD.host, FUNNEL_FORWARD.port);
            proxiedListening = true;
          },
        });
        if (wanted) log.info({ funnel: reported }, reported === FUNNEL_ON ? "Funnel on: tailscaled forwards port 443 here" : "Funnel asked for but not possible");
        await state.write({ [STATE_KEYS.funnel]: reported });
      }).catch((error: unknown) => {
        log.warn({ err: error }, "cannot configure Funnel; serving on the tailnet as before");
      });
    };
    const nginxConfigFor = (config: IngressProxyConfig, engine: NginxEngine): string =>
      nginxConfig(config.routes, { runDir: engine.files.dir, httpsPort: PORTS.https, addresses: device.ips, pemFile: engine.files.pem, whoisSocket: engine.files.whoisSocket, user: "root", headersMoreModule: HEADERS_MORE_MODULE });
    const startNginx = async (engine: NginxEngine): Promise<void> => {
      whoisEndpoint = new WhoisEndpoint((address, port) => identities.headersFor(address, port), log);
      await whoisEndpoint.listen(engine.files.whoisSocket);
      // nginx cannot wait for an address the way listenWithRetry does: it starts once all are usable.
      for (const ip of device.ips) {
        await listenWithRetry(() => bindOnce(ip), ip, PORTS.https, log);
      }
      const probeHost = device.ips[0];
      if (probeHost === undefined) throw new Error("the device has no tailnet IP to serve on");
      // The routes as they are now; a change from here on is queued behind the start (apply).
      if (!ingress) throw new Error("no ingress config to serve");
      await engine.start(nginxConfigFor(ingress, engine), { host: probeHost, port: PORTS.https });
      log.info({ nginxPid: engine.pid }, "nginx serving HTTPS");
      void engine.exited.then((exit) => {
        if (isStopping()) return;
        log.error({ exit }, "nginx exited");
        outcome.nginxDied = true;
        stopping.abort();
      });
    };
    const reloadNginx = (engine: NginxEngine, config: IngressProxyConfig): void => {
      // Queued behind any start or earlier change; nothing else in apply waits for it.
      Promise.resolve().then(() => engine.update(nginxConfigFor(config, engine))).then((reloaded) => {
        if (reloaded) log.info("nginx reloaded with the new routes");
      }, (error: unknown) => {
        log.error({ err: error }, "nginx cannot serve the new routes; it serves the previous ones");
      });
    };
    let httpsOpening: Promise<void> | undefined;
    const openHttps = (): Promise<void> =>
      (httpsOpening ??= (async () => {
        if (nginx) {
          await startNginx(nginx);
          return;
        }
        for (const ip of device.ips) await listenWithRetry(() => server.listen(ip, PORTS.https, "https"), ip, PORTS.https, log);
      })());
    let engine: "nginx" | "node" | undefined;
    const apply = (data: SecretData): void => {
      try {
        ingress = parseIngressConfig(data[INGRESS_SECRET_KEYS.config] ?? "");
        table = new RoutingTable(ingress.routes);
        log.info({ routes: ingress.routes.length, source: ingress.certificateSource, redirect: ingress.httpRedirect, funnel: ingress.funnel }, "routing table loaded");
        const wanted = httpsEngine(ingress);
        if (engine === undefined) {
          engine = wanted;
          if (engine === "nginx") nginx = new NginxEngine(join(config.TS_STATE_DIR, "nginx"), runner, log);
        } else if (wanted !== engine) {
          log.info({ serving: engine, wanted }, "this config is served by another HTTPS engine: the operator restarts the proxy with it");
        }
        // Plain HTTP has no certificate to keep (the pod restarts when that changes: restartKey).
        if (ingress.certificateSource !== "none") supervisor.update(ingress, data);
        // ACME's TLS-ALPN-01 challenge is answered on 443, so an ACME source gets the port before
        // its first certificate (whichever challenge it uses now or after a settings change);
        // other clients then fail the handshake instead of finding the port closed. nginx's
        // configs (HTTP-01) open it with the first certificate.
        if (ingress.certificateSource === "acme" && engine === "node") {
          openHttps().catch((error: unknown) => {
            log.error({ err: error }, "cannot listen on the HTTPS port");
          });
        }
        // Funnel hands HTTPS connections over, so it waits until there is HTTPS to hand them to.
        if (httpsServing) followFunnel(ingress.funnel);
        // Once nginx is started or starting; a start reads the routes as they are then.
        if (nginx && httpsOpening) reloadNginx(nginx, ingress);
      } catch (error) {
        // Keep serving the last good table: the operator validated it, so this is a bug or a hand edit.
        log.error({ err: error }, "ignoring an unreadable ingress config");
      }
    };
    for (const ip of device.ips) await listenWithRetry(() => server.listen(ip, PORTS.http, "http"), ip, PORTS.http, log);
    apply(first);
    listeners.add(apply);
    if (!ingress) throw new Error(`the ingress Secret ${ingressSecret} holds no valid ${INGRESS_SECRET_KEYS.config}`);

    if (ingress.certificateSource === "none") {
      log.info({ ips: device.ips, apiServer: ingress.apiServer?.mode }, "serving plain HTTP (no certificate source: the user asked for http)");
    } else {
      // Port 80 answers ACME's HTTP-01 meanwhile; HTTPS opens once there is a certificate to
      // serve (or earlier for ACME: apply).
      await Promise.race([supervisor.firstServed, new Promise((resolve) => { stopping.signal.addEventListener("abort", resolve, { once: true }); })]);
      if (!isStopping()) {
        await openHttps();
        log.info({ source: ingress.certificateSource, ips: device.ips, apiServer: ingress.apiServer?.mode }, "serving HTTPS");
        httpsServing = true;
        followFunnel(ingress.funnel);
      }
    }
    if (!isStopping()) await holdUntilReachable(config.TS_SOCKET, log);
    if (!isStopping()) {
      await state.write({ [STATE_KEYS.deviceFqdn]: device.fqdn, [STATE_KEYS.deviceIps]: JSON.stringify(device.ips) });
      health.setHealthy(true);
    }
    while (!isStopping()) await systemClock.sleep(5_000, stopping.signal).catch(() => undefined);
  } finally {
    health.setHealthy(false);
    await nginx?.stop();
    await whoisEndpoint?.close();
    await server.close();
    localApi.close();
    await tailscaled.stop();
    await health.close();
  }
  if (outcome.daemonDied) throw new Error("tailscaled exited");
  if (outcome.nginxDied) throw new Error("nginx exited");
}
