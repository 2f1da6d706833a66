// The source's decisions that need no CA: reuse of a stored certificate, the order limit, and
// actionable errors when the CA cannot be reached (a closed port on loopback).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { AcmeCertificateSource, KeyValueCertificateStore, MemoryCertificateStore } from "./acme-source.ts";
import { makeCertificate } from "../../../test/fakes/test-certificates.ts";
import { createLogger } from "../../shared/log.ts";

const DIRECTORY = "https://127.0.0.1:9/directory";
const DOMAIN = "web.tailnet.test";
const logger = createLogger({ name: "test", level: "silent" });

function source(store: MemoryCertificateStore, domains = [DOMAIN]): AcmeCertificateSource {
  return new AcmeCertificateSource({ directoryUrl: DIRECTORY, domains, store, logger, email: "ops@example.com" });
}

async function storeWith(options: { notBefore: Date; notAfter: Date; names?: string[] }): Promise<MemoryCertificateStore> {
  const store = new MemoryCertificateStore();
  const cert = await makeCertificate({ dnsNames: options.names ?? [DOMAIN], notBefore: options.notBefore, notAfter: options.notAfter });
  store.certificate = { directoryUrl: DIRECTORY, certPem: cert.certPem, keyPem: cert.keyPem };
  return store;
}

describe("AcmeCertificateSource without a CA", () => {
  it("serves a stored, still-fresh certificate without ordering (a restart does not re-issue)", async () => {
    const store = await storeWith({ notBefore: new Date(Date.now() - 3_600_000), notAfter: new Date(Date.now() + 90 * 86_400_000) });
    const abort = new AbortController();
    try {
      const served = await source(store).start(abort.signal, () => undefined);
      assert.equal(served.certPem, store.certificate?.certPem);
      assert.deepEqual(store.orders, []);
      assert.equal(store.account, undefined, "no account was registered");
    } finally {
      abort.abort();
    }
  });

  it("keeps serving a certificate due for renewal when the CA is unreachable", async () => {
    const store = await storeWith({ notBefore: new Date(Date.now() - 80 * 86_400_000), notAfter: new Date(Date.now() + 10 * 86_400_000) });
    const abort = new AbortController();
    try {
      const renewals: ({ message: string; expired: boolean } | null)[] = [];
      const served = await source(store).start(abort.signal, () => undefined, (problem) => renewals.push(problem));
      assert.equal(served.certPem, store.certificate?.certPem);
      // The Ingress still works, and the user is told its certificate is not being renewed.
      assert.equal(renewals.length, 1);
      const [problem] = renewals;
      assert.ok(problem);
      assert.equal(problem.expired, false);
      assert.match(problem.message, /^renewal failed; serving the certificate valid until \d{4}-.*cannot reach the ACME CA/);
    } finally {
      abort.abort();
    }
  });

  it("rejects with an actionable message when there is no usable certificate and the CA is unreachable", async () => {
    const expired = await storeWith({ notBefore: new Date(Date.now() - 2 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
    await assert.rejects(source(expired).start(AbortSignal.abort(), () => undefined), /cannot reach the ACME CA at https:\/\/127\.0\.0\.1:9\/directory \(.*ECONNREFUSED.*check the directory URL/);
    const otherName = await storeWith({ notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000), names: ["other.test"] });
    await assert.rejects(source(otherName).start(AbortSignal.abort(), () => undefined), /cannot reach the ACME CA/);
    assert.deepEqual(otherName.orders, [], "an order that was never sent is not counted");
  });

  it("refuses to order past the limit recorded in the store, before contacting the CA", async () => {
    const store = new MemoryCertificateStore();
    store.orders = [Date.now() - 30 * 60_000, Date.now() - 20 * 60_000, Date.now() - 10 * 60_000];
    await assert.rejects(
      source(store).start(AbortSignal.abort(), () => undefined),
      /limit of 3 orders per 1 hour\(s\) is reached \(counted across restarts\); the next order is allowed at \d{4}-.*check the proxy's logs/,
    );
  });

  it("needs a domain, and answers no challenge it was not given", () => {
    assert.throws(() => source(new MemoryCertificateStore(), []), /no domain/);
    const idle = source(new MemoryCertificateStore());
    assert.equal(idle.keyAuthorization("unknown-token"), undefined);
    assert.equal(idle.alpnPending(), false, "no handshake is inspected without an order");
    assert.equal(idle.alpnCertificate(DOMAIN), undefined);
  });
});

describe("KeyValueCertificateStore", () => {
  it("round-trips through string values and treats damaged ones as absent", async () => {
    const data = new Map<string, string>();
    const store = new KeyValueCertificateStore({
      get: (key) => Promise.resolve(data.get(key)),
      set: (key, value) => {
        data.set(key, value);
        return Promise.resolve();
      },
    });
    assert.equal(await store.loadCertificate(), undefined);
    assert.deepEqual(await store.loadOrderHistory(), []);
    await store.saveAccount({ directoryUrl: DIRECTORY, keyPem: "KEY", url: "https://ca/acct/1" });
    await store.saveOrderHistory([1, 2]);
    assert.deepEqual(await store.loadAccount(), { directoryUrl: DIRECTORY, keyPem: "KEY", url: "https://ca/acct/1" });
    assert.deepEqual(await store.loadOrderHistory(), [1, 2]);
    assert.deepEqual([...data.keys()].sort(), ["acme-account.json", "acme-orders.json"]);
    data.set("acme-certificate.json", "{not json");
    assert.equal(await store.loadCertificate(), undefined);
  });
});
