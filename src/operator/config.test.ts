import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { configInput, loadOperatorConfig, operatorHelp } from "./config.ts";
import { loadProxyConfig, proxyHelp } from "../proxy/config.ts";

const headscale = { CONTROL_PLANE: "headscale", OPERATOR_LOGIN_SERVER: "http://10.0.0.1:8080", HEADSCALE_API_KEY_FILE: "/k" };

describe("operator configuration", () => {
  it("applies defaults, and lets a flag override its environment variable", () => {
    const config = loadOperatorConfig(configInput({ ...headscale, PROXY_TAGS: "tag:a" }, ["--proxy-tags=tag:b", "--operator-workers=8"]));
    assert.equal(config.PROXY_TAGS, "tag:b");
    assert.equal(config.OPERATOR_WORKERS, 8);
    assert.equal(config.OPERATOR_NAMESPACE, "tailscale");
    assert.equal(config.LEADER_ELECTION, true);
  });

  it("takes client-go's leader election defaults and rejects timing that cannot work", () => {
    const config = loadOperatorConfig(headscale);
    assert.deepEqual([config.LEASE_DURATION_SECONDS, config.RENEW_DEADLINE_SECONDS, config.RETRY_PERIOD_SECONDS], [15, 10, 2]);
    assert.throws(() => loadOperatorConfig({ ...headscale, LEASE_DURATION_SECONDS: "4" }), /renew deadline must be shorter than the lease duration/);
    assert.throws(() => loadOperatorConfig({ ...headscale, RETRY_PERIOD_SECONDS: "10" }), /retry period must be shorter than the renew deadline/);
    assert.equal(loadOperatorConfig({ ...headscale, LEADER_ELECTION: "false", LEASE_DURATION_SECONDS: "4" }).LEASE_DURATION_SECONDS, 4, "no election, no timing check");
  });

  it("API server proxy: off by default, `true` is auth (Tailscale's operator's spelling), and auth needs an impersonating ServiceAccount", () => {
    assert.equal(loadOperatorConfig(headscale).APISERVER_PROXY, "false");
    const sa = { APISERVER_PROXY_SERVICE_ACCOUNT: "proxy" };
    assert.equal(loadOperatorConfig({ ...headscale, ...sa, APISERVER_PROXY: "true" }).APISERVER_PROXY, "auth");
    assert.equal(loadOperatorConfig({ ...headscale, APISERVER_PROXY: "noauth" }).APISERVER_PROXY, "noauth");
    assert.throws(() => loadOperatorConfig({ ...headscale, APISERVER_PROXY: "auth" }), /needs APISERVER_PROXY_SERVICE_ACCOUNT/);
    assert.throws(() => loadOperatorConfig({ ...headscale, ...sa, APISERVER_PROXY: "auth", APISERVER_PROXY_HTTP: "true", APISERVER_PROXY_TLS_SECRET: "t" }), /exclude each other/);
    assert.throws(() => loadOperatorConfig({ ...headscale, APISERVER_PROXY: "yes" }), /APISERVER_PROXY/);
    assert.throws(() => loadOperatorConfig({ ...headscale, APISERVER_PROXY_HOSTNAME: "Bad_Name" }), /APISERVER_PROXY_HOSTNAME: must be a DNS label/);
  });

  it("limits Kubernetes API calls like controller-runtime by default, and allows turning the limit off", () => {
    const config = loadOperatorConfig(headscale);
    assert.deepEqual([config.KUBE_API_QPS, config.KUBE_API_BURST], [20, 30]);
    assert.equal(loadOperatorConfig({ ...headscale, KUBE_API_QPS: "0" }).KUBE_API_QPS, 0);
    assert.throws(() => loadOperatorConfig({ ...headscale, KUBE_API_QPS: "-1", KUBE_API_BURST: "0" }), (error: unknown) => error instanceof Error && /KUBE_API_QPS/.test(error.message) && /KUBE_API_BURST/.test(error.message));
  });

  it("parses PROXY_ENV into variables", () => {
    assert.deepEqual(loadOperatorConfig({ ...headscale, PROXY_ENV: "A=1, B=x=y" }).PROXY_ENV, { A: "1", B: "x=y" });
  });

  it("rejects bad values with one message naming each problem", () => {
    assert.throws(
      () => loadOperatorConfig({ ...headscale, OPERATOR_WORKERS: "0", PROXY_FIREWALL_MODE: "ebpf", LEADER_ELECTION: "yes" }),
      (error: unknown) => error instanceof Error && /OPERATOR_WORKERS/.test(error.message) && /PROXY_FIREWALL_MODE/.test(error.message) && /LEADER_ELECTION/.test(error.message),
    );
    assert.throws(() => loadOperatorConfig({ CONTROL_PLANE: "headscale" }), /needs HEADSCALE_API_KEY_FILE and OPERATOR_LOGIN_SERVER/);
    assert.throws(() => loadOperatorConfig({}), /needs CLIENT_ID_FILE and CLIENT_SECRET_FILE/);
    assert.throws(() => configInput({}, ["--no-such-flag=1"]), /unknown flag --no-such-flag/);
  });

  it("documents every setting in --help", () => {
    for (const name of ["CONTROL_PLANE", "PROXY_FIREWALL_MODE", "LEASE_DURATION_SECONDS", "--proxy-env"]) assert.ok(operatorHelp().includes(name), name);
  });
});

describe("proxy configuration", () => {
  const base = { TS_KUBE_SECRET: "ts-web-0", TS_HOSTNAME: "web", TS_DEST_IP: "10.96.0.10, fd96::a" };

  it("reads the destinations of both families and defaults the firewall to auto", () => {
    const config = loadProxyConfig(base);
    assert.deepEqual(config.TS_DEST_IP, ["10.96.0.10", "fd96::a"]);
    assert.equal(config.TS_DEBUG_FIREWALL_MODE, "auto");
  });

  it("rejects an unknown firewall mode, a bad destination and a socket path too long for unix sockets", () => {
    assert.throws(() => loadProxyConfig({ ...base, TS_DEBUG_FIREWALL_MODE: "pf" }), /TS_DEBUG_FIREWALL_MODE/);
    assert.throws(() => loadProxyConfig({ ...base, TS_DEST_IP: "10.96.0.300" }), /TS_DEST_IP/);
    assert.throws(() => loadProxyConfig({ ...base, TS_SOCKET: `/${"x".repeat(120)}` }), /at most 107 bytes/);
    assert.ok(proxyHelp().includes("doctor"));
  });
});
