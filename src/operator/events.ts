// Kubernetes Events on the objects the operator acts for, so `kubectl describe` tells users
// what happened. Failures to record an Event are logged, never fatal.
import type { KubernetesObject } from "@kubernetes/client-node";
import type { KubeClient } from "../kube/kube-client.ts";
import type { Logger } from "../shared/log.ts";
import type { Clock } from "../shared/clock.ts";

export type EventType = "Normal" | "Warning";

export interface EventRecorder {
  record(object: KubernetesObject, type: EventType, reason: string, message: string): Promise<void>;
}

export class KubeEventRecorder implements EventRecorder {
  private readonly kube: KubeClient;
  private readonly log: Logger;
  private readonly clock: Clock;
  private sequence = 0;

  constructor(kube: KubeClient, log: Logger, clock: Clock) {
    this.kube = kube;
    this.log = log;
    this.clock = clock;
  }

  async record(object: KubernetesObject, type: EventType, reason: string, message: string): Promise<void> {
    const now = new Date(this.clock.now()).toISOString();
    const namespace = object.metadata?.namespace ?? "default";
    const name = `${object.metadata?.name ?? "object"}.${this.clock.now().toString(16)}${(this.sequence++).toString(16)}`;
    try {
      await this.kube.create({
        apiVersion: "v1",
        kind: "Event",
        metadata: { name, namespace },
        involvedObject: {
          apiVersion: object.apiVersion,
          kind: object.kind,
          name: object.metadata?.name,
          namespace,
          uid: object.metadata?.uid,
          resourceVersion: object.metadata?.resourceVersion,
        },
        type,
        reason,
        message,
        source: { component: "tailnet-operator" },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      } as KubernetesObject);
    } catch (error) {
      this.log.warn({ err: error, reason }, "could not record event");
    }
  }
}
