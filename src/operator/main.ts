// tailnet-operator: composition root. Reads configuration, connects to the Kubernetes API and
// the control plane, serves health and metrics, wins the leader Lease, then runs the Service
// controller until SIGTERM, when it drains and hands the Lease over.
import type { KubernetesObject, V1Ingress, V1Secret, V1Service } from "@kubernetes/client-node";
import { randomUUID } from "node:crypto";
import { answerInfoFlags } from "../shared/cli-info.ts";
import { createLogger } from "../shared/log.ts";
import { systemClock } from "../shared/clock.ts";
import { HttpKubeClient } from "../kube/http-kube-client.ts";
import { CachedKubeClient, type CacheScope } from "../kube/cached-kube-client.ts";
import { loadKubeAccess } from "../kube/kube-access.ts";
import { RestClient } from "../kube/rest-client.ts";
import { perResource } from "../kube/rate-limiter.ts";
import { startWatch, type Watch } from "../kube/watch.ts";
import { Controller } from "../runtime/controller.ts";
import { RuntimeMetrics } from "../runtime/metrics.ts";
import { LeaderElector } from "../runtime/leader-election.ts";
import { runWhileLeading } from "../runtime/leadership.ts";
import { OperatorHttpServer } from "../runtime/http-server.ts";
import { HeadscaleApi } from "../control/headscale-api.ts";
import { KEY_DESCRIPTION, TailscaleApi } from "../control/tailscale-api.ts";
import type { ControlPlane } from "../control/control-plane.ts";
import { configInput, leaderElectionTiming, loadOperatorConfig, operatorHelp, readCredential, type OperatorConfig } from "./config.ts";
import { FINALIZER, LABELS } from "./names.ts";
import { isExposed } from "./service-intent.ts";
import { ProxyProvisioner } from "./proxy-provisioner.ts";
import { ServiceReconciler } from "./service-reconciler.ts";
import { EgressReconciler } from "./egress-reconciler.ts";
import { isEgressManaged, wantsEgress } from "./egress-intent.ts";
import { clusterDomain } from "./cluster-domain.ts";
import { KubeEventRecorder } from "./events.ts";
import { releaseAll, stopOperator } from "./uninstall.ts";
import { KubeIngressStatusWriter } from "../kube/ingress-status.ts";
import { IngressReconciler } from "./ingress-reconciler.ts";
import { isOurIngress } from "./ingress-intent.ts";
import { IngressIndex } from "./ingress-index.ts";
import { loadAcme, type OperatorAcme } from "./acme-settings.ts";
import type { Logger } from "../shared/log.ts";
import { ApiServerProxyReconciler } from "./apiserver-proxy-reconciler.ts";
import { OrphanSweeper } from "./orphan-sweep.ts";

function controlPlane(config: OperatorConfig): ControlPlane {
  if (config.CONTROL_PLANE === "headscale") {
    return new HeadscaleApi({ url: config.OPERATOR_LOGIN_SERVER ?? "", apiKey: readCredential(config.HEADSCALE_API_KEY_FILE ?? "", "the Headscale API key") });
  }
  return new TailscaleApi({
    apiUrl: config.TAILSCALE_API_URL,
    clientId: readCredential(config.CLIENT_ID_FILE ?? "", "the OAuth client ID"),
    clientSecret: readCredential(config.CLIENT_SECRET_FILE ?? "", "the OAuth client secret"),
    ...(config.OPERATOR_LOGIN_SERVER ? { loginServer: config.OPERATOR_LOGIN_SERVER } : {}),
  });
}

/** The parent a managed child belongs to (its type and key), from its parent labels. */
function parentOf(labels: Record<string, string> | undefined): { type: string; key: string } | undefined {
  const type = labels?.[LABELS.parentType];
  if (!type) return undefined;
  return { type, key: `${labels[LABELS.parentNamespace] ?? ""}/${labels[LABELS.parentName] ?? ""}` };
}

/** /api/v1/[namespaces/<ns>/]<plural>, or /apis/<group>/<version>/... for named groups. */
function watchPath(scope: CacheScope, plural: string): string {
  const base = scope.apiVersion.includes("/") ? `/apis/${scope.apiVersion}` : `/api/${scope.apiVersion}`;
  return `${base}${scope.namespace ? `/namespaces/${scope.namespace}` : ""}/${plural}`;
}

/** Ingresses without a TLS Secret get ACME certificates when the operator has a directory. */
function acmeOptions(acme: OperatorAcme | undefined): { acmeConfigured: boolean; acme?: OperatorAcme } {
  return acme ? { acmeConfigured: true, acme } : { acmeConfigured: false };
}

/** Makes API clients that share one access and the process's QPS budgets (one per resource, ADR 0032). */
function restClients(config: OperatorConfig): () => RestClient {
  const access = loadKubeAccess({ env: process.env });
  const limiters = perResource({ qps: config.KUBE_API_QPS, burst: config.KUBE_API_BURST }, systemClock);
  return () => new RestClient(access, limiters);
}

/**
 * What lives as long as the process (the control plane's client keeps its OAuth token), read at
 * start-up so that a bad setting or a missing credential fails before any Lease is taken.
 */
function processWide(config: OperatorConfig): { tailnet: ControlPlane; acme: ReturnType<typeof acmeOptions> } {
  return { tailnet: controlPlane(config), acme: acmeOptions(loadAcme(config)) };
}

/** What both a term as leader and `uninstall` are built from, on one API client. */
function compose(config: OperatorConfig, log: Logger, rest: RestClient, { tailnet, acme }: ReturnType<typeof processWide>) {
  // Reads come from the watches' caches once run() registers them; uninstall reads live.
  const kube = new CachedKubeClient(new HttpKubeClient(rest));
  const provisioner = new ProxyProvisioner(kube, tailnet, {
    operatorNamespace: config.OPERATOR_NAMESPACE,
    image: config.PROXY_IMAGE,
    loginServer: config.OPERATOR_LOGIN_SERVER,
    firewallMode: config.PROXY_FIREWALL_MODE,
    forwarding: config.PROXY_FORWARDING,
    resources: config.PROXY_RESOURCES,
    extraEnv: config.PROXY_ENV,
  });
  const intentOptions = { defaultTags: config.PROXY_TAGS.split(",").map((t) => t.trim()), defaultLoadBalancer: config.OPERATOR_DEFAULT_LOAD_BALANCER };
  const events = new KubeEventRecorder(kube, log, systemClock);
  const egress = new EgressReconciler({
    kube,
    provisioner,
    events,
    clock: systemClock,
    intent: intentOptions,
    operatorNamespace: config.OPERATOR_NAMESPACE,
    clusterDomain: clusterDomain(config.CLUSTER_DOMAIN),
  });
  const ingressReconciler = new IngressReconciler({
    kube,
    status: new KubeIngressStatusWriter(rest),
    provisioner,
    events,
    clock: systemClock,
    options: { defaultTags: intentOptions.defaultTags, controlPlane: config.CONTROL_PLANE, ...acme },
  });
  const reconciler = new ServiceReconciler({ kube, provisioner, events, clock: systemClock, intent: intentOptions, egress });
  const deployment = config.OPERATOR_DEPLOYMENT;
  const apiServerProxyTags = (config.APISERVER_PROXY_TAGS ?? config.PROXY_TAGS).split(",").map((t) => t.trim()).filter(Boolean);
  const sweptTags = [
    ...intentOptions.defaultTags,
    ...(config.APISERVER_PROXY === "false" ? [] : apiServerProxyTags),
    ...config.ORPHAN_KEY_SWEEP_TAGS.split(",").map((t) => t.trim()).filter(Boolean),
  ];
  const orphanSweep = { controlPlane: tailnet, kube, namespace: config.OPERATOR_NAMESPACE, tags: sweptTags, description: KEY_DESCRIPTION, log };
  const apiServerProxy = new ApiServerProxyReconciler({
    kube,
    provisioner,
    events,
    settings: {
      mode: config.APISERVER_PROXY,
      hostname: config.APISERVER_PROXY_HOSTNAME,
      tags: apiServerProxyTags,
      tlsSecret: config.APISERVER_PROXY_TLS_SECRET,
      http: config.APISERVER_PROXY_HTTP,
      serviceAccount: config.APISERVER_PROXY_SERVICE_ACCOUNT,
      controlPlane: config.CONTROL_PLANE,
      ...acme,
    },
    reportTo: () => (deployment ? kube.get({ apiVersion: "apps/v1", kind: "Deployment", namespace: config.OPERATOR_NAMESPACE, name: deployment }) : Promise.resolve(undefined)),
  });
  return { kube, reconciler, ingressReconciler, apiServerProxy, intentOptions, orphanSweep };
}

async function uninstall(config: OperatorConfig): Promise<void> {
  const log = createLogger({ name: "tailnet-operator", level: config.OPERATOR_LOGGING });
  const { kube, reconciler, ingressReconciler, apiServerProxy } = compose(config, log, restClients(config)(), processWide(config));
  if (config.OPERATOR_DEPLOYMENT) {
    await stopOperator({ kube, namespace: config.OPERATOR_NAMESPACE, deployment: config.OPERATOR_DEPLOYMENT, log, clock: systemClock, deadlineMs: UNINSTALL_DEADLINE_MS });
  }
  const services = await releaseAll({ kube, release: reconciler.release, log, clock: systemClock, deadlineMs: UNINSTALL_DEADLINE_MS });
  const ingresses = await releaseAll({ kube, release: ingressReconciler.release, log, clock: systemClock, deadlineMs: UNINSTALL_DEADLINE_MS, resource: { apiVersion: "networking.k8s.io/v1", kind: "Ingress" } });
  const apiServer = await releaseApiServerProxy(apiServerProxy, log);
  const result = { released: [...services.released, ...ingresses.released, ...apiServer.released], failed: [...services.failed, ...ingresses.failed, ...apiServer.failed] };
  log.info({ released: result.released.length, failed: result.failed }, "uninstall finished");
  if (result.failed.length > 0) throw new Error(`could not release ${result.failed.map((f) => `${f.key} (${f.error})`).join(", ")}`);
}

async function run(config: OperatorConfig): Promise<void> {
  const log = createLogger({ name: "tailnet-operator", level: config.OPERATOR_LOGGING });
  const shared = processWide(config);
  const newRestClient = restClients(config);
  // The Lease's own client lives as long as the process; each term has another (below).
  const leaseRest = newRestClient();
  const metrics = new RuntimeMetrics();
  const elector = config.LEADER_ELECTION
    ? new LeaderElector({
        kube: new HttpKubeClient(leaseRest),
        clock: systemClock,
        log,
        namespace: config.OPERATOR_NAMESPACE,
        name: "tailnet-operator-leader",
        // Per process, as client-go users do (hostname_uuid): a restarted container must not
        // resume its predecessor's Lease without waiting for it to expire.
        identity: `${config.LEADER_ELECTION_ID}_${randomUUID().slice(0, 8)}`,
        timing: leaderElectionTiming(config),
      })
    : undefined;
  const http = new OperatorHttpServer(metrics.registry, () => elector?.healthy() ?? true);
  await http.listen(config.OPERATOR_HTTP_ADDR);
  log.info({ addr: config.OPERATOR_HTTP_ADDR, controlPlane: config.CONTROL_PLANE, namespace: config.OPERATOR_NAMESPACE }, "starting");

  const stopping = new AbortController();
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.removeAllListeners(signal); // the entry point's start-up handler (bin/tailnet-operator.js)
    process.once(signal, () => {
      log.info({ signal }, "shutting down");
      stopping.abort();
    });
  }

  // A standby is ready: waiting for the Lease is its job. A leader is ready once every watch
  // has made its initial list.
  http.setReady(true);
  const leadership = {
    elector,
    stopping: stopping.signal,
    log,
    clock: systemClock,
    setActing: (acting: boolean) => {
      metrics.isLeader.set(acting ? 1 : 0);
      metrics.leaderSince.set(acting ? systemClock.now() / 1000 : 0);
      // Not ready while a new term's watches sync; ready again as a standby.
      http.setReady(!acting);
    },
    exit: (code: number) => process.exit(code),
  };
  // One term as leader: queues, watches and caches are made afresh each time (after a lost Lease
  // this replica may lead again in the same process, and what it saw before may be stale).
  await runWhileLeading(leadership, async ({ acting, lost }) => {
    // The term's own API client: a lost Lease closes it, cutting what the term has in flight and
    // failing at once whatever its work still asks, so the work ends within the grace (ADR 0026).
    const rest = newRestClient();
    lost.addEventListener("abort", () => {
      rest.close();
    }, { once: true });
    const { kube, reconciler, ingressReconciler, apiServerProxy, intentOptions, orphanSweep } = compose(config, log, rest, shared);
    const sweeper = config.ORPHAN_KEY_SWEEP
      ? new OrphanSweeper({ ...orphanSweep, clock: systemClock, exclusive: config.LEADER_ELECTION, onRevoked: (count) => { metrics.orphanKeysRevoked.inc(count); } })
      : undefined;
    const controller = new Controller({ name: "service", reconcile: reconciler.reconcile, workers: config.OPERATOR_WORKERS, log, metrics });
    const ingressController = new Controller({ name: "ingress", reconcile: ingressReconciler.reconcile, workers: config.OPERATOR_WORKERS, log, metrics });
    const ingressIndex = new IngressIndex();
    const apiServerController = new Controller({ name: "apiserver-proxy", reconcile: apiServerProxy.reconcile, workers: 1, log, metrics });
    const watch = <T extends KubernetesObject>(scope: CacheScope, plural: string, onObject: (object: T) => void): Watch<T> => {
      const started = startWatch<T>({
        rest,
        log,
        path: watchPath(scope, plural),
        apiVersion: scope.apiVersion,
        kind: scope.kind,
        ...(scope.labelSelector ? { labelSelector: scope.labelSelector } : {}),
        onObject,
      });
      kube.register(scope, started.store);
      return started;
    };
    const enqueueParent = (object: KubernetesObject): void => {
      const parent = parentOf(object.metadata?.labels);
      if (parent?.type === "svc") controller.enqueue(parent.key);
      if (parent?.type === "ingress") ingressController.enqueue(parent.key);
      if (parent?.type === "apiserver") apiServerController.enqueue(parent.key);
    };
    const managed = { namespace: config.OPERATOR_NAMESPACE, labelSelector: `${LABELS.managed}=true` };
    const watches: Watch[] = [
      watch<V1Service>({ apiVersion: "v1", kind: "Service" }, "services", (svc) => {
        // Only Services that ask for a proxy, or still carry ours, are worth a reconcile.
        if (isExposed(svc, intentOptions) || wantsEgress(svc, intentOptions) || isEgressManaged(svc) || svc.metadata?.finalizers?.includes(FINALIZER)) {
          controller.enqueue(`${svc.metadata?.namespace ?? ""}/${svc.metadata?.name ?? ""}`);
        }
        // Ingress backends are re-resolved when their Service changes (or appears, or goes).
        for (const key of ingressIndex.usingService(svc.metadata?.namespace ?? "", svc.metadata?.name ?? "")) ingressController.enqueue(key);
      }),
      watch<V1Ingress>({ apiVersion: "networking.k8s.io/v1", kind: "Ingress" }, "ingresses", (ingress) => {
        ingressIndex.update(ingress);
        if (isOurIngress(ingress) || ingress.metadata?.finalizers?.includes(FINALIZER)) {
          ingressController.enqueue(`${ingress.metadata?.namespace ?? ""}/${ingress.metadata?.name ?? ""}`);
        }
      }),
      // TLS Secrets only (a field selector, so not a read cache): a rotated certificate is copied
      // to its proxies.
      startWatch<V1Secret>({
        rest,
        log,
        path: "/api/v1/secrets",
        apiVersion: "v1",
        kind: "Secret",
        fieldSelector: TLS_SECRETS,
        // Only their names are used here (the reconciler reads a certificate live): every TLS
        // Secret of the cluster need not sit in memory.
        slim: ({ data, stringData, ...secret }) => secret,
        onObject: (secret) => {
          for (const key of ingressIndex.usingSecret(secret.metadata?.namespace ?? "", secret.metadata?.name ?? "")) ingressController.enqueue(key);
          if (apiServerProxy.usesSecret(secret.metadata?.namespace ?? "", secret.metadata?.name ?? "")) apiServerController.enqueue(apiServerProxy.key);
        },
      }),
      // Every kind of a proxy's children, so that reconciles read them from memory and any change
      // (a state Secret the proxy wrote, a pod that failed or went away) wakes the parent at once.
      watch({ apiVersion: "v1", kind: "Secret", ...managed }, "secrets", enqueueParent),
      watch({ apiVersion: "v1", kind: "Pod", ...managed }, "pods", enqueueParent),
      watch({ apiVersion: "v1", kind: "ServiceAccount", ...managed }, "serviceaccounts", enqueueParent),
      watch({ apiVersion: "apps/v1", kind: "StatefulSet", ...managed }, "statefulsets", enqueueParent),
      watch({ apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", ...managed }, "roles", enqueueParent),
      watch({ apiVersion: "rbac.authorization.k8s.io/v1", kind: "RoleBinding", ...managed }, "rolebindings", enqueueParent),
    ];
    try {
      // Reconciles read these caches: the workers start once each holds a complete list (or
      // not at all, if this term ends first).
      if (!(await untilAborted(Promise.all(watches.map((w) => w.synced)), acting))) return;
      http.setReady(true);
      log.info({ watches: watches.length }, "watches synced");
      // Before any worker mints a key: what a predecessor minted and never stored is revoked.
      await sweeper?.initial(acting);
      if (acting.aborted) return;
      // Also when it is off: a proxy left from an earlier configuration is removed.
      apiServerController.enqueue(apiServerProxy.key);
      const workers = Promise.all([controller.run(acting), ingressController.run(acting), apiServerController.run(acting), sweeper?.periodic(acting)]);
      log.info({ workers: config.OPERATOR_WORKERS }, "controllers running");
      await workers;
    } finally {
      // Stopping aborts every watch at once; a request hung on a cut connection must not hold the
      // term open past the margin before another replica may act (ADR 0026), so wait briefly only.
      await untilAborted(Promise.all(watches.map((w) => w.stop())), AbortSignal.timeout(WATCH_STOP_WAIT_MS));
      rest.close();
    }
  });
  leaseRest.close();
  await http.close();
  log.info("stopped");
}

/** True once the promise resolves, false if the signal aborts first. */
function untilAborted(promise: Promise<unknown>, signal: AbortSignal): Promise<boolean> {
  const aborted = new Promise<false>((resolve) => {
    if (signal.aborted) resolve(false);
    signal.addEventListener("abort", () => {
      resolve(false);
    }, { once: true });
  });
  return Promise.race([promise.then(() => true), aborted]);
}

const UNINSTALL_DEADLINE_MS = 240_000;
const WATCH_STOP_WAIT_MS = 1_000;

/** Uninstall: the API server proxy's pod and device go too (cleanup may take a few passes). */
async function releaseApiServerProxy(reconciler: ApiServerProxyReconciler, log: Logger): Promise<{ released: string[]; failed: { key: string; error: string }[] }> {
  const deadline = systemClock.now() + UNINSTALL_DEADLINE_MS;
  const context = { log, signal: new AbortController().signal };
  try {
    while ((await reconciler.release(reconciler.key, context)).requeueAfterMs !== undefined) {
      if (systemClock.now() > deadline) return { released: [], failed: [{ key: reconciler.key, error: "its proxy pod did not stop in time" }] };
      await systemClock.sleep(1_000);
    }
    return { released: [reconciler.key], failed: [] };
  } catch (error) {
    return { released: [], failed: [{ key: reconciler.key, error: (error as Error).message }] };
  }
}
const TLS_SECRETS = "type=kubernetes.io/tls";
const argv = process.argv.slice(2);
const command = argv[0] === "uninstall" ? "uninstall" : "run";
if (!answerInfoFlags(argv, operatorHelp())) {
  let config: OperatorConfig | undefined;
  try {
    config = loadOperatorConfig(configInput(process.env, command === "uninstall" ? argv.slice(1) : argv));
  } catch (error) {
    process.stderr.write(`tailnet-operator: ${(error as Error).message}\n`);
    process.exitCode = 2;
  }
  if (config) {
    await (command === "uninstall" ? uninstall(config) : run(config)).catch((error: unknown) => {
      createLogger({ name: "tailnet-operator" }).error({ err: error }, "operator failed");
      // Exit now: a timer or socket left behind must not keep a half-working process alive.
      process.exit(1);
    });
  }
}
