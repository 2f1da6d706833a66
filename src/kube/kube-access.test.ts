import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadKubeAccess } from "./kube-access.ts";

describe("loadKubeAccess", () => {
  let dir = "";
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "kube-access-"));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const write = (name: string, text: string): string => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };

  it("reads the current context of KUBECONFIG: server, a CA file relative to the kubeconfig, a token", () => {
    write("ca.crt", "CA PEM");
    const file = write(
      "token.kubeconfig",
      `apiVersion: v1
kind: Config
clusters:
- name: other
  cluster: { server: "https://other:6443" }
- name: sandbox
  cluster:
    server: https://10.77.0.2:6443/
    certificate-authority: ca.crt
users:
- name: sandbox-user
  user: { token: s3cret }
contexts:
- name: first
  context: { cluster: other, user: sandbox-user }
- name: sandbox
  context: { cluster: sandbox, user: sandbox-user, namespace: default }
current-context: sandbox
`,
    );
    const access = loadKubeAccess({ env: { KUBECONFIG: `${join(dir, "missing")}:${file}` } });
    assert.equal(access.server, "https://10.77.0.2:6443");
    assert.equal(access.ca?.toString(), "CA PEM");
    assert.equal(access.authorization?.(), "Bearer s3cret");
    assert.equal(access.cert, undefined);
  });

  it("reads client certificates inline (base64) and skip-verify", () => {
    const file = write(
      "cert.kubeconfig",
      `clusters: [{ name: c, cluster: { server: "https://h:443", insecure-skip-tls-verify: true, tls-server-name: kubernetes } }]
users: [{ name: u, user: { client-certificate-data: ${Buffer.from("CERT").toString("base64")}, client-key-data: ${Buffer.from("KEY").toString("base64")} } }]
contexts: [{ name: x, context: { cluster: c, user: u } }]
current-context: x
`,
    );
    const access = loadKubeAccess({ env: { KUBECONFIG: file } });
    assert.equal(access.cert?.toString(), "CERT");
    assert.equal(access.key?.toString(), "KEY");
    assert.equal(access.insecureSkipTlsVerify, true);
    assert.equal(access.tlsServerName, "kubernetes");
    assert.equal(access.authorization, undefined);
  });

  it("refuses exec credential plugins and a KUBECONFIG that names no file, saying why", () => {
    const file = write(
      "exec.kubeconfig",
      `clusters: [{ name: c, cluster: { server: "https://h" } }]
users: [{ name: u, user: { exec: { command: aws } } }]
contexts: [{ name: x, context: { cluster: c, user: u } }]
current-context: x
`,
    );
    assert.throws(() => loadKubeAccess({ env: { KUBECONFIG: file } }), /uses exec/);
    assert.throws(() => loadKubeAccess({ env: { KUBECONFIG: join(dir, "nope") } }), /names no file/);
    assert.throws(() => loadKubeAccess({ env: { HOME: dir } }), /no Kubernetes API found/);
  });

  it("in a pod: the service address and the ServiceAccount token, read again after a minute (the kubelet rotates it)", () => {
    const sa = join(dir, "sa");
    mkdirSync(sa);
    writeFileSync(join(sa, "ca.crt"), "CLUSTER CA");
    writeFileSync(join(sa, "token"), "first\n");
    let now = 1_000_000;
    const access = loadKubeAccess({ env: { KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "443", HOME: dir }, serviceAccountDir: sa, now: () => now });
    assert.equal(access.server, "https://[fd00::1]:443");
    assert.equal(access.ca?.toString(), "CLUSTER CA");
    assert.equal(access.authorization?.(), "Bearer first");
    writeFileSync(join(sa, "token"), "second\n");
    now += 30_000;
    assert.equal(access.authorization(), "Bearer first", "not read on every request");
    now += 30_000;
    assert.equal(access.authorization(), "Bearer second");
  });
});
