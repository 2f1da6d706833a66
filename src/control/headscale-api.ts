// Headscale through its native REST API (/api/v1, API-key auth). The pinned release has no
// Tailscale-compatible /api/v2 (docs/adr/0004-control-plane-apis.md).
import type { AuthKeyRequest, ControlPlane, Device } from "./control-plane.ts";
import { JsonHttpClient } from "./http.ts";

interface HeadscaleNode {
  id: string;
  name: string;
  givenName?: string;
  ipAddresses?: string[];
  tags?: string[];
}

const DAY_SECONDS = 86_400;

export class HeadscaleApi implements ControlPlane {
  readonly loginServer: string;
  private readonly http: JsonHttpClient;

  constructor(options: { url: string; apiKey: string }) {
    this.loginServer = options.url;
    this.http = new JsonHttpClient({ baseUrl: options.url, authorization: () => Promise.resolve(`Bearer ${options.apiKey}`) });
  }

  async createAuthKey(request: AuthKeyRequest): Promise<string> {
    const expiration = new Date(Date.now() + (request.expirySeconds ?? DAY_SECONDS) * 1000).toISOString();
    const response = await this.http.request<{ preAuthKey: { key: string } }>({
      method: "POST",
      path: "/api/v1/preauthkey",
      // Headscale keys are pre-authorized by nature; tags make the node a tagged device.
      body: { reusable: request.reusable ?? false, ephemeral: request.ephemeral ?? false, expiration, aclTags: request.tags },
    });
    return response.body?.preAuthKey.key ?? "";
  }

  async getDevice(id: string): Promise<Device | undefined> {
    const response = await this.http.request<{ node: HeadscaleNode }>({ method: "GET", path: `/api/v1/node/${encodeURIComponent(id)}`, accept: [404] });
    const node = response.status === 404 ? undefined : response.body?.node;
    return node && { id: node.id, hostname: node.givenName ?? node.name, addresses: node.ipAddresses ?? [], tags: node.tags ?? [] };
  }

  async deleteDevice(id: string): Promise<void> {
    await this.http.request({ method: "DELETE", path: `/api/v1/node/${encodeURIComponent(id)}`, accept: [404] });
  }
}
