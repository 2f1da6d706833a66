import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { loadOperatorConfig } from "./config.ts";
import { loadAcme } from "./acme-settings.ts";

const headscale = { CONTROL_PLANE: "headscale", OPERATOR_LOGIN_SERVER: "http://10.0.0.1:8080", HEADSCALE_API_KEY_FILE: "/k" };
const acme = { ...headscale, ACME_DIRECTORY_URL: "https://ca.example.com/dir" };
// A real (self-signed) certificate, so that the bundle check parses it.
const PEM = `-----BEGIN CERTIFICATE-----
MIIBfjCCASOgAwIBAgIUaW6eZzC+4G9n5f1s1Y7p1o3x0+AwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJdGVzdCByb290MB4XDTI2MDEwMTAwMDAwMFoXDTM2MDEwMTAw
MDAwMFowFDESMBAGA1UEAwwJdGVzdCByb290MFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAE
-----END CERTIFICATE-----`;

describe("operator ACME settings", () => {
  it("are off without a directory, and default to 3 orders an hour and 5 a week with one", () => {
    assert.equal(loadAcme(loadOperatorConfig(headscale)), undefined);
    const loaded = loadAcme(loadOperatorConfig(acme));
    assert.deepEqual(loaded, { settings: { directoryUrl: "https://ca.example.com/dir", maxOrdersPerHour: 3, maxOrdersPerWeek: 5 }, eabHmacKey: undefined });
  });

  it("reads the CA bundle and the EAB key from files, and passes email, profile, challenge and limits", () => {
    const files: Record<string, string> = { "/ca.pem": `${PEM}\n`, "/hmac": "c2VjcmV0\n" };
    const config = loadOperatorConfig({
      ...acme,
      ACME_CA_BUNDLE_FILE: "/ca.pem",
      ACME_EMAIL: "ops@example.com",
      ACME_PROFILE: "shortlived",
      ACME_EAB_KEY_ID: "kid",
      ACME_EAB_HMAC_KEY_FILE: "/hmac",
      ACME_MAX_ORDERS_PER_HOUR: "20",
      ACME_MAX_ORDERS_PER_WEEK: "100",
    });
    const read = (path: string): string => {
      const text = files[path];
      if (text === undefined) throw new Error("ENOENT");
      return text;
    };
    assert.throws(() => loadAcme(config, read), /certificate #1 does not parse/, "a truncated certificate is caught at start");
    files["/ca.pem"] = "not a certificate";
    assert.throws(() => loadAcme(config, read), /the ACME CA bundle \/ca\.pem holds no PEM certificate/);
    delete files["/hmac"];
    files["/ca.pem"] = "";
    assert.throws(() => loadAcme(config, read), /cannot read the ACME CA bundle from \/ca\.pem: file is empty/);
    const noBundle = loadOperatorConfig({ ...acme, ACME_EAB_KEY_ID: "kid", ACME_EAB_HMAC_KEY_FILE: "/hmac", ACME_EMAIL: "ops@example.com", ACME_PROFILE: "shortlived", ACME_CHALLENGE: "tls-alpn-01", ACME_MAX_ORDERS_PER_HOUR: "20", ACME_MAX_ORDERS_PER_WEEK: "100" });
    assert.throws(() => loadAcme(noBundle, read), (error: Error) => /cannot read the ACME EAB HMAC key from \/hmac/.test(error.message) && !error.message.includes("c2Vj"));
    files["/hmac"] = "c2VjcmV0\n";
    assert.deepEqual(loadAcme(noBundle, read), {
      settings: { directoryUrl: "https://ca.example.com/dir", maxOrdersPerHour: 20, maxOrdersPerWeek: 100, challenge: "tls-alpn-01", email: "ops@example.com", eabKeyId: "kid", profile: "shortlived" },
      eabHmacKey: "c2VjcmV0",
    });
  });

  it("rejects settings that cannot work, naming them", () => {
    assert.throws(() => loadOperatorConfig({ ...headscale, ACME_EMAIL: "ops@example.com" }), /ACME_EMAIL set without ACME_DIRECTORY_URL/);
    assert.throws(() => loadOperatorConfig({ ...acme, ACME_DIRECTORY_URL: "http://ca.example.com/dir" }), /ACME_DIRECTORY_URL/);
    assert.throws(() => loadOperatorConfig({ ...acme, ACME_EAB_KEY_ID: "kid" }), /ACME_EAB_KEY_ID and ACME_EAB_HMAC_KEY_FILE go together/);
    assert.throws(() => loadOperatorConfig({ ...acme, ACME_MAX_ORDERS_PER_HOUR: "10" }), /ACME_MAX_ORDERS_PER_WEEK must be at least ACME_MAX_ORDERS_PER_HOUR/);
    assert.throws(() => loadOperatorConfig({ ...acme, ACME_MAX_ORDERS_PER_HOUR: "0" }), /ACME_MAX_ORDERS_PER_HOUR/);
    assert.throws(() => loadOperatorConfig({ ...acme, ACME_PROFILE: "short lived" }), /ACME_PROFILE: must be a profile name/);
    assert.throws(() => loadOperatorConfig({ ...acme, ACME_CHALLENGE: "dns-01" }), /ACME_CHALLENGE/);
  });
});
