// Headscale through its native REST API (/api/v1, API-key auth). The pinned release has no
// Tailscale-compatible /api/v2 (docs/adr/0004-control-plane-apis.md).
import type { AuthKey, AuthKeyRecord, AuthKeyRequest, ControlPlane, Device } from "./control-plane.ts";
import { JsonHttpClient } from "./http.ts";

// uint64 ids: grpc-gateway sends them as strings, but a number would not surprise.
interface HeadscaleNode {
  id: string | number;
  name: string;
  givenName?: string;
  ipAddresses?: string[];
  tags?: string[];
  /** The key the node registered with (the latest, after a re-registration); absent for an interactive login. */
  preAuthKey?: { id?: string | number } | null;
}

interface HeadscalePreAuthKey {
  id: string | number;
  reusable?: boolean;
  ephemeral?: boolean;
  used?: boolean;
  /** RFC 3339 timestamps (grpc-gateway's rendering of protobuf Timestamps). */
  expiration?: string;
  createdAt?: string;
  aclTags?: string[];
}

const DAY_SECONDS = 86_400;

export class HeadscaleApi implements ControlPlane {
  readonly loginServer: string;
  readonly linksDevicesToKeys = true;
  private readonly http: JsonHttpClient;

  constructor(options: { url: string; apiKey: string }) {
    this.loginServer = options.url;
    this.http = new JsonHttpClient({ baseUrl: options.url, authorization: () => Promise.resolve(`Bearer ${options.apiKey}`) });
  }

  async createAuthKey(request: AuthKeyRequest): Promise<AuthKey> {
    const expiration = new Date(Date.now() + (request.expirySeconds ?? DAY_SECONDS) * 1000).toISOString();
    const response = await this.http.request<{ preAuthKey: { id: string | number; key: string } }>({
      method: "POST",
      path: "/api/v1/preauthkey",
      // Headscale keys are pre-authorized by nature; tags make the node a tagged device.
      body: { reusable: request.reusable ?? false, ephemeral: request.ephemeral ?? false, expiration, aclTags: request.tags },
    });
    return { id: String(response.body?.preAuthKey.id ?? ""), key: response.body?.preAuthKey.key ?? "" };
  }

  async revokeAuthKey(id: string): Promise<void> {
    // Expiring is Headscale's revocation: the key stays listed (as expired) but joins nothing.
    await this.http.request({ method: "POST", path: "/api/v1/preauthkey/expire", body: { id }, accept: [404] });
  }

  async listAuthKeys(): Promise<AuthKeyRecord[]> {
    const response = await this.http.request<{ preAuthKeys?: HeadscalePreAuthKey[] }>({ method: "GET", path: "/api/v1/preauthkey" });
    const now = Date.now();
    return (response.body?.preAuthKeys ?? []).map((key) => ({
      id: String(key.id),
      tags: key.aclTags ?? [],
      // A key without a readable creation time is never old enough for the sweep.
      createdAt: Date.parse(key.createdAt ?? "") || Number.POSITIVE_INFINITY,
      // Revoking expires a key, so an expired key is a revoked one too.
      usable: (key.reusable === true || key.used !== true) && (Date.parse(key.expiration ?? "") || 0) > now,
      reusable: key.reusable === true,
      ephemeral: key.ephemeral === true,
    }));
  }

  async listDevices(): Promise<Device[]> {
    const response = await this.http.request<{ nodes?: HeadscaleNode[] }>({ method: "GET", path: "/api/v1/node" });
    return (response.body?.nodes ?? []).map(toDevice);
  }

  async getDevice(id: string): Promise<Device | undefined> {
    const response = await this.http.request<{ node: HeadscaleNode }>({ method: "GET", path: `/api/v1/node/${encodeURIComponent(id)}`, accept: [404] });
    const node = response.status === 404 ? undefined : response.body?.node;
    return node && toDevice(node);
  }

  async deleteDevice(id: string): Promise<void> {
    await this.http.request({ method: "DELETE", path: `/api/v1/node/${encodeURIComponent(id)}`, accept: [404] });
  }
}

/** `name` is the hostname the node reported; `givenName` is its MagicDNS label (may have a suffix). */
function toDevice(node: HeadscaleNode): Device {
  const keyId = node.preAuthKey?.id;
  return { id: String(node.id), hostname: node.name, addresses: node.ipAddresses ?? [], tags: node.tags ?? [], ...(keyId === undefined ? {} : { authKeyId: String(keyId) }) };
}
