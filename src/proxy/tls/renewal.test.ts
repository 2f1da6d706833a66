import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { coversExactly, readCertificate, renewalTime, type CertificateFacts } from "./renewal.ts";
import { makeCertificate } from "../../../test/fakes/test-certificates.ts";

const DAY = 24 * 3_600_000;
const notBefore = new Date("2026-01-01T00:00:00Z");
const facts = (lifetimeMs: number): CertificateFacts => ({
  serial: "1",
  notBefore,
  notAfter: new Date(notBefore.getTime() + lifetimeMs),
  dnsNames: ["web.tailnet.test"],
  ariCertId: undefined,
});
const at = (ms: number): Date => new Date(notBefore.getTime() + ms);

describe("readCertificate", () => {
  it("reads serial, validity, names and the ARI certificate ID (RFC 9773's example)", async () => {
    const { certPem } = await makeCertificate({
      dnsNames: ["web.tailnet.test", "Other.Example"],
      notBefore,
      notAfter: at(90 * DAY),
      serialHex: "0087654321",
      akiHex: "69885b6b87464041e1b37b847ba0ae2cde01c8d4",
    });
    const read = readCertificate(`${certPem}\n${certPem}`);
    assert.equal(read.serial, "87654321");
    assert.deepEqual(read.notBefore, notBefore);
    assert.deepEqual(read.notAfter, at(90 * DAY));
    assert.deepEqual(read.dnsNames, ["web.tailnet.test", "other.example"]);
    assert.equal(read.ariCertId, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
  });

  it("has no ARI ID without an authority key identifier, and refuses non-PEM input", async () => {
    const { certPem } = await makeCertificate({ dnsNames: ["a.test"], notBefore, notAfter: at(DAY) });
    assert.equal(readCertificate(certPem).ariCertId, undefined);
    assert.throws(() => readCertificate("not a certificate"), /no PEM certificate/);
  });

  it("coversExactly compares the name sets", () => {
    const f = { ...facts(DAY), dnsNames: ["a.test", "b.test"] };
    assert.ok(coversExactly(f, ["B.test", "a.test"]));
    assert.ok(!coversExactly(f, ["a.test"]));
    assert.ok(!coversExactly(f, ["a.test", "b.test", "c.test"]));
  });
});

describe("renewalTime", () => {
  const lifetime = 90 * DAY;
  const twoThirds = notBefore.getTime() + 60 * DAY;

  it("without ARI: two thirds into the lifetime, plus up to a twelfth of it", () => {
    assert.equal(renewalTime(facts(lifetime), undefined, () => 0), twoThirds);
    assert.equal(renewalTime(facts(lifetime), undefined, () => 1), twoThirds + 7.5 * DAY);
  });

  it("follows a window that closes before the two-thirds point (the CA wants early renewal)", () => {
    const window = { start: at(10 * DAY), end: at(12 * DAY) };
    assert.equal(renewalTime(facts(lifetime), window, () => 0.5), at(11 * DAY).getTime());
  });

  it("follows a window that opens after the two-thirds point", () => {
    const window = { start: at(70 * DAY), end: at(72 * DAY) };
    assert.equal(renewalTime(facts(lifetime), window, () => 0), at(70 * DAY).getTime());
  });

  it("takes a straddling window's part after two thirds (no renewal right after issuance)", () => {
    const short = facts(60_000);
    const window = { start: notBefore, end: short.notAfter };
    assert.equal(renewalTime(short, window, () => 0), notBefore.getTime() + 40_000);
    assert.equal(renewalTime(short, window, () => 1), notBefore.getTime() + 45_000);
  });

  it("ignores an invalid window (end not after start)", () => {
    const window = { start: at(10 * DAY), end: at(10 * DAY) };
    assert.equal(renewalTime(facts(lifetime), window, () => 0), twoThirds);
  });
});
