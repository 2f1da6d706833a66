import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createLogger } from "../../shared/log.ts";
import type { Clock } from "../../shared/clock.ts";
import type { IngressProxyConfig } from "../../shared/ingress-config.ts";
import type { CertificateSource, ServedCertificate } from "../tls/certificate-source.ts";
import { CertificateSupervisor } from "./certificate-supervisor.ts";

const log = createLogger({ name: "test", level: "silent" });
const cert = (name: string): ServedCertificate => ({ certPem: name, keyPem: "k", notAfter: new Date(0) });
const config = (directoryUrl: string, routes = 0): IngressProxyConfig => ({
  version: 1,
  certificateSource: "acme",
  httpRedirect: false,
  funnel: false,
  routes: Array.from({ length: routes }, () => ({ pathType: "Prefix" as const, path: "/", backend: "http://10.0.0.1/" })),
  acme: { directoryUrl, maxOrdersPerHour: 3, maxOrdersPerWeek: 5 },
});

/** Sleeps resolve at once (recording how long they asked for) unless aborted. */
function fakeClock(waits: number[]): Clock {
  return {
    now: () => 0,
    sleep: (ms, signal) => {
      waits.push(ms);
      return signal?.aborted ? Promise.reject(new Error("aborted")) : new Promise((resolve) => setImmediate(resolve));
    },
  };
}

const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20));

describe("certificate supervisor", () => {
  it("retries a failing source with growing waits, reporting why, and clears the report once serving", async () => {
    const reports: (string | null)[] = [];
    const served: string[] = [];
    const waits: number[] = [];
    let attempts = 0;
    const source: CertificateSource = {
      kind: "acme",
      start: () => (++attempts < 3 ? Promise.reject(new Error(`CA unreachable (${attempts})`)) : Promise.resolve(cert("good"))),
    };
    const supervisor = new CertificateSupervisor({
      log,
      clock: fakeClock(waits),
      create: () => ({ source, challenges: undefined }),
      serve: (c) => served.push(c.certPem),
      report: (problem) => {
        reports.push(problem);
        return Promise.resolve();
      },
      reportRenewal: () => Promise.resolve(),
      retryMs: { initial: 100, max: 150 },
    });
    supervisor.update(config("https://ca.example/dir"), {});
    await supervisor.firstServed;
    assert.deepEqual(reports, ["CA unreachable (1)", "CA unreachable (2)", null]);
    assert.deepEqual(waits, [100, 150]);
    assert.deepEqual(served, ["good"]);
    supervisor.stop();
  });

  it("restarts the source when its settings change, not when only routes do, and ignores the old one's renewals", async () => {
    const started: string[] = [];
    const renewals = new Map<string, (c: ServedCertificate) => void>();
    const served: string[] = [];
    const supervisor = new CertificateSupervisor({
      log,
      clock: fakeClock([]),
      create: (c) => {
        const url = c.acme?.directoryUrl ?? "";
        return {
          source: {
            kind: "acme",
            start: (_signal, onChange) => {
              started.push(url);
              renewals.set(url, onChange);
              return Promise.resolve(cert(url));
            },
          },
          challenges: { keyAuthorization: (token) => `${url}:${token}`, alpnCertificate: () => undefined, alpnPending: () => false },
        };
      },
      serve: (c) => served.push(c.certPem),
      report: () => Promise.resolve(),
      reportRenewal: () => Promise.resolve(),
    });
    supervisor.update(config("https://a/dir"), {});
    await settle();
    supervisor.update(config("https://a/dir", 2), {});
    await settle();
    assert.deepEqual(started, ["https://a/dir"], "a route change keeps the source");
    supervisor.update(config("https://b/dir"), {});
    await settle();
    assert.deepEqual(started, ["https://a/dir", "https://b/dir"]);
    assert.equal(supervisor.challenges()?.keyAuthorization("t"), "https://b/dir:t", "challenges go to the running source");
    renewals.get("https://a/dir")?.(cert("stale renewal"));
    renewals.get("https://b/dir")?.(cert("renewed"));
    assert.deepEqual(served, ["https://a/dir", "https://b/dir", "renewed"]);
    supervisor.stop();
  });

  it("reports a failing renewal while a certificate is served, also one that failed before start resolved, and clears it once renewed", async () => {
    const renewalReports: (string | null)[] = [];
    const errorReports: (string | null)[] = [];
    let renew: ((problem: { message: string; expired: boolean } | null) => void) | undefined;
    const supervisor = new CertificateSupervisor({
      log,
      clock: fakeClock([]),
      create: () => ({
        source: {
          kind: "acme",
          start: (_signal, _onChange, onRenewal) => {
            renew = onRenewal;
            // A stored certificate due for renewal, the CA unreachable: served meanwhile.
            onRenewal?.({ message: "renewal failed; serving the certificate valid until then", expired: false });
            return Promise.resolve(cert("stored"));
          },
        },
        challenges: undefined,
      }),
      serve: () => undefined,
      report: (problem) => {
        errorReports.push(problem);
        return Promise.resolve();
      },
      reportRenewal: (problem) => {
        renewalReports.push(problem?.message ?? null);
        return Promise.resolve();
      },
    });
    supervisor.update(config("https://a/dir"), {});
    await supervisor.firstServed;
    await settle();
    assert.deepEqual(errorReports, [null], "a certificate is in service");
    assert.deepEqual(renewalReports, ["renewal failed; serving the certificate valid until then"], "not lost when the start error is cleared");
    renew?.(null);
    assert.deepEqual(renewalReports.at(-1), null);
    supervisor.stop();
  });
});
