// HeadscaleApi against the real Headscale, with real tailscaled devices joining: the same
// contract the Tailscale API fake is held to.
import { before } from "node:test";
import { attachSandbox } from "../helpers/sandbox.ts";
import { HeadscaleApi } from "../../src/control/headscale-api.ts";
import { controlPlaneContract } from "../contract/control-plane.contract.ts";

const sandbox = await attachSandbox();
let api: HeadscaleApi;
before(async () => {
  api = new HeadscaleApi({ url: sandbox.headscale.url, apiKey: await sandbox.headscaleAdmin.createApiKey() });
});

controlPlaneContract("Headscale /api/v1 (real)", () => ({
  controlPlane: api,
  badCredentials: new HeadscaleApi({ url: sandbox.headscale.url, apiKey: "not-a-key" }),
  join: async (authKey, hostname) => (await (await sandbox.addDevice(hostname, { authKey })).status()).id,
}));
