import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { containerArgv, containerCapabilities, expandReferences, resolveEnv, UnsupportedPodError, type PodDataSource } from "./pod-spec.ts";
import { imageRepository, projectImageMap } from "./images.ts";

const pod: V1Pod = {
  metadata: { name: "proxy-0", namespace: "tailscale", uid: "u-1", labels: { app: "x" } },
  spec: { containers: [], serviceAccountName: "proxies", nodeName: "n1" },
};
const data: PodDataSource = {
  secret: (name) => Promise.resolve(name === "s" ? { key: "secret-value" } : undefined),
  configMap: (name) => Promise.resolve(name === "c" ? { a: "1", b: "2" } : undefined),
};

describe("resolveEnv", () => {
  it("resolves values, field refs, key refs, envFrom prefixes and $(VAR) references in order", async () => {
    const container: V1Container = {
      name: "c",
      envFrom: [{ configMapRef: { name: "c" }, prefix: "CM_" }],
      env: [
        { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
        { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
        { name: "APP", valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
        { name: "SECRET", valueFrom: { secretKeyRef: { name: "s", key: "key" } } },
        { name: "MISSING", valueFrom: { secretKeyRef: { name: "s", key: "nope", optional: true } } },
        { name: "DIR", value: "/etc/tsconfig/$(POD_NAME)/$$(POD_NAME)/$(UNKNOWN)" },
      ],
    };
    assert.deepEqual(await resolveEnv(container, pod, "10.77.0.9", data), {
      CM_a: "1",
      CM_b: "2",
      POD_NAME: "proxy-0",
      POD_IP: "10.77.0.9",
      APP: "x",
      SECRET: "secret-value",
      DIR: "/etc/tsconfig/proxy-0/$(POD_NAME)/$(UNKNOWN)",
    });
  });

  it("refuses a missing non-optional key and an unemulated source", async () => {
    await assert.rejects(
      resolveEnv({ name: "c", env: [{ name: "X", valueFrom: { secretKeyRef: { name: "gone", key: "k" } } }] }, pod, "", data),
      (error: unknown) => error instanceof UnsupportedPodError && /Secret gone key k not found/.test(error.message),
    );
    await assert.rejects(
      resolveEnv({ name: "c", env: [{ name: "X", valueFrom: { resourceFieldRef: { resource: "limits.cpu" } } }] }, pod, "", data),
      UnsupportedPodError,
    );
  });
});

describe("expandReferences", () => {
  it("leaves text without references alone", () => {
    assert.equal(expandReferences("plain $HOME", { HOME: "x" }), "plain $HOME");
  });
});

describe("containerCapabilities", () => {
  it("starts from the runtime default set, applies drop then add", () => {
    const caps = containerCapabilities({ name: "c", securityContext: { capabilities: { drop: ["ALL"], add: ["NET_ADMIN", "cap_net_raw"] } } });
    assert.deepEqual(caps, ["NET_ADMIN", "NET_RAW"]);
    const defaults = containerCapabilities({ name: "c", securityContext: { capabilities: { drop: ["NET_RAW"] } } });
    assert.ok(Array.isArray(defaults) && !defaults.includes("NET_RAW") && defaults.includes("CHOWN"));
    assert.equal(containerCapabilities({ name: "c", securityContext: { privileged: true } }), "all");
  });
});

describe("images", () => {
  it("strips registry, tag and digest from image references", () => {
    assert.equal(imageRepository("tailnet-operator/proxy:v1"), "tailnet-operator/proxy");
    assert.equal(imageRepository("registry.local:5000/tailnet-operator/proxy@sha256:abc"), "tailnet-operator/proxy");
    assert.equal(imageRepository("nginx:1.20-alpine"), "nginx");
  });

  it("maps the project's images and refuses others with a clear error", () => {
    const images = projectImageMap();
    const argv = containerArgv({ name: "p", image: "tailnet-operator/proxy:dev", args: ["--x"] }, images);
    assert.match(argv[1] ?? "", /bin\/tailnet-proxy\.js$/);
    assert.equal(argv.at(-1), "--x");
    assert.throws(() => containerArgv({ name: "web", image: "nginx:1.20-alpine" }, images), /image "nginx:1.20-alpine" has no stand-in/);
    assert.throws(
      () => containerArgv({ name: "p", image: "tailnet-operator/proxy", command: ["/bin/sh", "-c", "x"] }, images),
      /command "\/bin\/sh" is not the image's program/,
    );
  });
});
