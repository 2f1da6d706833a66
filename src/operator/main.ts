// tailnet-operator: composition root. Reads configuration, connects to the Kubernetes API and
// the control plane, serves health and metrics, wins the leader Lease, then runs the Service
// controller until SIGTERM, when it drains and hands the Lease over.
import { CoreV1Api, AppsV1Api, KubeConfig, type V1Secret, type V1Service, type V1StatefulSet } from "@kubernetes/client-node";
import { randomUUID } from "node:crypto";
import { answerInfoFlags } from "../shared/cli-info.ts";
import { createLogger } from "../shared/log.ts";
import { systemClock } from "../shared/clock.ts";
import { ClientNodeKubeClient } from "../kube/client-node.ts";
import { startWatch, type Watch } from "../kube/watch.ts";
import { Controller } from "../runtime/controller.ts";
import { RuntimeMetrics } from "../runtime/metrics.ts";
import { LeaderElector } from "../runtime/leader-election.ts";
import { runWhileLeading } from "../runtime/leadership.ts";
import { OperatorHttpServer } from "../runtime/http-server.ts";
import { HeadscaleApi } from "../control/headscale-api.ts";
import { TailscaleApi } from "../control/tailscale-api.ts";
import type { ControlPlane } from "../control/control-plane.ts";
import { configInput, leaderElectionTiming, loadOperatorConfig, operatorHelp, readCredential, type OperatorConfig } from "./config.ts";
import { FINALIZER, LABELS } from "./names.ts";
import { isExposed } from "./service-intent.ts";
import { ProxyProvisioner } from "./proxy-provisioner.ts";
import { ServiceReconciler } from "./service-reconciler.ts";
import { KubeEventRecorder } from "./events.ts";
import { releaseAll, stopOperator } from "./uninstall.ts";
import type { Logger } from "../shared/log.ts";

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

/** The Service key a managed child belongs to, from its parent labels. */
function parentKey(labels: Record<string, string> | undefined): string | undefined {
  if (labels?.[LABELS.parentType] !== "svc") return undefined;
  return `${labels[LABELS.parentNamespace] ?? ""}/${labels[LABELS.parentName] ?? ""}`;
}

/** What both the controller and `uninstall` are built from. */
function compose(config: OperatorConfig, log: Logger) {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  const kube = new ClientNodeKubeClient(kc);
  const provisioner = new ProxyProvisioner(kube, controlPlane(config), {
    operatorNamespace: config.OPERATOR_NAMESPACE,
    image: config.PROXY_IMAGE,
    loginServer: config.OPERATOR_LOGIN_SERVER,
    firewallMode: config.PROXY_FIREWALL_MODE,
    forwarding: config.PROXY_FORWARDING,
    resources: config.PROXY_RESOURCES,
    extraEnv: config.PROXY_ENV,
  });
  const intentOptions = { defaultTags: config.PROXY_TAGS.split(",").map((t) => t.trim()), defaultLoadBalancer: config.OPERATOR_DEFAULT_LOAD_BALANCER };
  const reconciler = new ServiceReconciler({
    kube,
    provisioner,
    events: new KubeEventRecorder(kube, log, systemClock),
    clock: systemClock,
    intent: intentOptions,
  });
  return { kc, kube, reconciler, intentOptions };
}

async function uninstall(config: OperatorConfig): Promise<void> {
  const log = createLogger({ name: "tailnet-operator", level: config.OPERATOR_LOGGING });
  const { kube, reconciler } = compose(config, log);
  if (config.OPERATOR_DEPLOYMENT) {
    await stopOperator({ kube, namespace: config.OPERATOR_NAMESPACE, deployment: config.OPERATOR_DEPLOYMENT, log, clock: systemClock, deadlineMs: UNINSTALL_DEADLINE_MS });
  }
  const result = await releaseAll({ kube, release: reconciler.release, log, clock: systemClock, deadlineMs: UNINSTALL_DEADLINE_MS });
  log.info({ released: result.released.length, failed: result.failed }, "uninstall finished");
  if (result.failed.length > 0) throw new Error(`could not release ${result.failed.map((f) => `${f.key} (${f.error})`).join(", ")}`);
}

async function run(config: OperatorConfig): Promise<void> {
  const log = createLogger({ name: "tailnet-operator", level: config.OPERATOR_LOGGING });
  const { kc, kube, reconciler, intentOptions } = compose(config, log);
  const metrics = new RuntimeMetrics();
  const elector = config.LEADER_ELECTION
    ? new LeaderElector({
        kube,
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
    process.once(signal, () => {
      log.info({ signal }, "shutting down");
      stopping.abort();
    });
  }

  const controller = new Controller({ name: "service", reconcile: reconciler.reconcile, workers: config.OPERATOR_WORKERS, log, metrics });

  // A standby is ready: waiting for the Lease is its job. A leader is ready once every watch
  // has made its initial list.
  http.setReady(true);
  const leadership = {
    elector,
    stopping: stopping.signal,
    log,
    setActing: (acting: boolean) => {
      metrics.isLeader.set(acting ? 1 : 0);
      metrics.leaderSince.set(acting ? systemClock.now() / 1000 : 0);
      if (acting) http.setReady(false);
    },
    exit: (code: number) => process.exit(code),
  };
  await runWhileLeading(leadership, async (acting) => {
    const core = kc.makeApiClient(CoreV1Api);
    const apps = kc.makeApiClient(AppsV1Api);
    const enqueueParent = (object: { metadata?: { labels?: Record<string, string> } }): void => {
      const key = parentKey(object.metadata?.labels);
      if (key) controller.enqueue(key);
    };
    const watches: Watch[] = [
      startWatch<V1Service>({
        kc,
        log,
        path: "/api/v1/services",
        list: () => core.listServiceForAllNamespaces(),
        onObject: (svc) => {
          // Only Services that ask for a proxy, or still carry ours, are worth a reconcile.
          if (isExposed(svc, intentOptions) || svc.metadata?.finalizers?.includes(FINALIZER)) {
            controller.enqueue(`${svc.metadata?.namespace ?? ""}/${svc.metadata?.name ?? ""}`);
          }
        },
      }),
      startWatch<V1Secret>({
        kc,
        log,
        path: `/api/v1/namespaces/${config.OPERATOR_NAMESPACE}/secrets`,
        list: () => core.listNamespacedSecret({ namespace: config.OPERATOR_NAMESPACE, labelSelector: `${LABELS.managed}=true` }),
        labelSelector: `${LABELS.managed}=true`,
        onObject: enqueueParent,
      }),
      startWatch<V1StatefulSet>({
        kc,
        log,
        path: `/apis/apps/v1/namespaces/${config.OPERATOR_NAMESPACE}/statefulsets`,
        list: () => apps.listNamespacedStatefulSet({ namespace: config.OPERATOR_NAMESPACE, labelSelector: `${LABELS.managed}=true` }),
        labelSelector: `${LABELS.managed}=true`,
        onObject: enqueueParent,
      }),
    ];
    void Promise.all(watches.map((w) => w.synced)).then(() => {
      http.setReady(true);
      log.info("watches synced");
    });
    const workers = controller.run(acting);
    log.info({ workers: config.OPERATOR_WORKERS }, "controllers running");
    await workers;
    await Promise.all(watches.map((w) => w.stop()));
  });
  await http.close();
  log.info("stopped");
}

const UNINSTALL_DEADLINE_MS = 240_000;
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
