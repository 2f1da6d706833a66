// createCertificateSource's ACME source: loaded only when it starts (acme-client stays out of
// proxies that never use it), and then the real ACME source, with no CA needed: a stored,
// still-fresh certificate is served without ordering.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createCertificateSource, type SourceDeps } from "./certificate-sources.ts";
import { MemoryCertificateStore } from "../tls/certificate-store.ts";
import { makeCertificate } from "../../../test/fakes/test-certificates.ts";
import { createProxyLogger } from "../log.ts";
import type { LocalApi } from "./local-api.ts";

const DIRECTORY = "https://127.0.0.1:9/directory";
const FQDN = "web.tailnet.test";

function deps(store: MemoryCertificateStore, acme: SourceDeps["acme"]): SourceDeps {
  return {
    initialSecret: {},
    subscribeSecret: () => undefined,
    localApi: {} as LocalApi,
    fqdn: FQDN,
    acme,
    acmeStore: store,
    logger: createProxyLogger({ name: "test", write: () => undefined }),
  };
}

describe("createCertificateSource (acme)", () => {
  it("starts the ACME source on demand: a stored fresh certificate is served, and it answers for challenges", async () => {
    const store = new MemoryCertificateStore();
    const cert = await makeCertificate({ dnsNames: [FQDN], notBefore: new Date(Date.now() - 3_600_000), notAfter: new Date(Date.now() + 90 * 86_400_000) });
    store.certificate = { directoryUrl: DIRECTORY, certPem: cert.certPem, keyPem: cert.keyPem };
    const { source, challenges } = createCertificateSource("acme", deps(store, { directoryUrl: DIRECTORY, maxOrdersPerHour: 3, maxOrdersPerWeek: 5 }));
    assert.equal(source.kind, "acme");
    assert.equal(challenges, source, "the ACME source answers its challenges (HTTP-01, TLS-ALPN-01)");
    assert.equal(challenges.keyAuthorization("unknown"), undefined, "no challenge before it starts");
    assert.equal(challenges.alpnPending(), false, "no TLS-ALPN-01 challenge before it starts");
    const abort = new AbortController();
    try {
      const served = await source.start(abort.signal, () => undefined);
      assert.equal(served.certPem, cert.certPem);
      assert.deepEqual(store.orders, [], "nothing ordered");
      assert.equal(challenges.keyAuthorization("unknown"), undefined);
      assert.equal(challenges.alpnPending(), false, "a stored certificate needs no challenge");
    } finally {
      abort.abort();
    }
  });

  it("refuses a config without ACME settings at once", () => {
    assert.throws(() => createCertificateSource("acme", deps(new MemoryCertificateStore(), undefined)), /holds no ACME settings/);
  });
});
