// TailscaleApi against the fake of Tailscale's API: the shared contract, plus the OAuth flow.
import { before, after, it } from "node:test";
import assert from "node:assert/strict";
import { TailscaleApi } from "./tailscale-api.ts";
import { FakeTailscaleApi } from "../../test/fakes/fake-tailscale-api.ts";
import { controlPlaneContract } from "../../test/contract/control-plane.contract.ts";
import { ControlPlaneError } from "./control-plane.ts";

const fake = new FakeTailscaleApi();
let apiUrl = "";
let api: TailscaleApi;
before(async () => {
  apiUrl = await fake.start();
  api = new TailscaleApi({ apiUrl, clientId: fake.clientId, clientSecret: fake.clientSecret });
});
after(() => fake.stop());

controlPlaneContract("Tailscale API v2 (fake)", () => ({
  controlPlane: api,
  badCredentials: new TailscaleApi({ apiUrl, clientId: fake.clientId, clientSecret: "tskey-client-wrong" }),
  join: async (key, hostname) => {
    await Promise.resolve();
    return fake.join(key, hostname);
  },
}));

it("reuses one OAuth token for many calls", async () => {
  const before = fake.requests.filter((r) => r.path === "/api/v2/oauth/token").length;
  await api.createAuthKey({ tags: ["tag:k8s"] });
  await api.getDevice("nothing");
  assert.equal(fake.requests.filter((r) => r.path === "/api/v2/oauth/token").length, before);
});

it("surfaces a malformed tag as a non-retryable 400", async () => {
  await assert.rejects(api.createAuthKey({ tags: ["k8s"] }), (error: unknown) => error instanceof ControlPlaneError && error.status === 400 && !error.retryable);
});
