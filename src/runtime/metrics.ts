// Prometheus metrics of the controller runtime, in one registry the operator serves.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export class RuntimeMetrics {
  readonly registry = new Registry();
  readonly reconciles: Counter<"controller" | "result">;
  readonly reconcileSeconds: Histogram<"controller">;
  readonly queueDepth: Gauge<"controller">;
  readonly isLeader: Gauge;
  readonly leaderSince: Gauge;
  readonly orphanKeysRevoked: Counter;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "tailnet_operator_" });
    this.reconciles = new Counter({
      name: "tailnet_operator_reconcile_total",
      help: "Reconciles by controller and result (success, requeue, error, terminal).",
      labelNames: ["controller", "result"],
      registers: [this.registry],
    });
    this.reconcileSeconds = new Histogram({
      name: "tailnet_operator_reconcile_duration_seconds",
      help: "Time spent in one reconcile.",
      labelNames: ["controller"],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    this.queueDepth = new Gauge({
      name: "tailnet_operator_workqueue_depth",
      help: "Keys waiting in a controller's work queue.",
      labelNames: ["controller"],
      registers: [this.registry],
    });
    this.isLeader = new Gauge({ name: "tailnet_operator_is_leader", help: "1 while this replica acts as the leader (holds the Lease and runs its workers).", registers: [this.registry] });
    this.orphanKeysRevoked = new Counter({ name: "tailnet_operator_orphan_auth_keys_revoked_total", help: "Auth keys the orphan sweep revoked: minted, but held by no proxy's Secret (an operator stopped between minting and storing).", registers: [this.registry] });
    this.leaderSince = new Gauge({ name: "tailnet_operator_leader_since_seconds", help: "Unix time at which this replica started acting as the leader; 0 while it does not.", registers: [this.registry] });
  }
}
