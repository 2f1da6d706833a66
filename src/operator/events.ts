// Kubernetes Events on the objects the operator acts for, so `kubectl describe` tells users
// what happened. Failures to record an Event are logged, never fatal. Names are client-go's
// `<object>.<hex unix nanoseconds>`; the sub-millisecond part is random, so replicas (or a
// restarted process) recording in the same millisecond do not collide, and a collision that
// still happens is retried under a new name and logged.
import type { KubernetesObject } from "@kubernetes/client-node";
import type { KubeClient } from "../kube/kube-client.ts";
import type { Logger } from "../shared/log.ts";
import type { Clock } from "../shared/clock.ts";
import { randomInt } from "node:crypto";

const NAME_ATTEMPTS = 3;

export type EventType = "Normal" | "Warning";

export interface EventRecorder {
  record(object: KubernetesObject, type: EventType, reason: string, message: string): Promise<void>;
}

export class KubeEventRecorder implements EventRecorder {
  private readonly kube: KubeClient;
  private readonly log: Logger;
  private readonly clock: Clock;

  constructor(kube: KubeClient, log: Logger, clock: Clock) {
    this.kube = kube;
    this.log = log;
    this.clock = clock;
  }

  async record(object: KubernetesObject, type: EventType, reason: string, message: string): Promise<void> {
    const now = new Date(this.clock.now()).toISOString();
    const namespace = object.metadata?.namespace ?? "default";
    for (let attempt = 1; attempt <= NAME_ATTEMPTS; attempt++) {
      const nanos = BigInt(this.clock.now()) * 1_000_000n + BigInt(randomInt(1_000_000));
      const name = `${object.metadata?.name ?? "object"}.${nanos.toString(16)}`;
      const created = await this.create(name, namespace, now, object, type, reason, message);
      if (created !== "exists") return;
      this.log.warn({ event: name, reason, attempt }, "event name already taken; retrying under a new name");
    }
  }

  /** Creates the Event; "exists" on a name collision, undefined otherwise (failures are logged). */
  private async create(name: string, namespace: string, now: string, object: KubernetesObject, type: EventType, reason: string, message: string): Promise<"exists" | undefined> {
    try {
      const created = await this.kube.create({
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
      return created === "exists" ? "exists" : undefined;
    } catch (error) {
      this.log.warn({ err: error, reason }, "could not record event");
      return undefined;
    }
  }
}
