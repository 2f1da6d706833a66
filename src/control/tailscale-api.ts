// Tailscale's hosted API (v2) with OAuth client credentials, as the Tailscale operator uses it:
// tagged pre-authorized keys for proxies, device lookup and deletion. The tailnet is "-" (the
// credential's own).
import type { AuthKey, AuthKeyRecord, AuthKeyRequest, ControlPlane, Device } from "./control-plane.ts";
import { JsonHttpClient } from "./http.ts";

interface TailscaleDevice {
  id?: string;
  nodeId?: string;
  hostname?: string;
  name?: string;
  addresses?: string[];
  tags?: string[];
}

/** A key as GET /tailnet/-/keys/{id} describes it; API tokens and OAuth clients have no device capabilities. */
interface TailscaleKey {
  id: string;
  created?: string;
  expires?: string;
  revoked?: string;
  invalid?: boolean;
  description?: string;
  capabilities?: { devices?: { create?: { reusable?: boolean; ephemeral?: boolean; tags?: string[] } } };
}

/** What the operator's keys say of themselves: the orphan sweep looks at no other key. */
export const KEY_DESCRIPTION = "tailnet-operator proxy";

/** Key details are read a few at a time: one request per key, bounded. */
const KEY_READS_IN_FLIGHT = 4;

/** Refresh the access token this long before it expires. */
const TOKEN_MARGIN_MS = 60_000;

export class TailscaleApi implements ControlPlane {
  /** tailscaled's default control server is Tailscale's; a custom one is passed through. */
  readonly loginServer: string | undefined;
  /** A device in Tailscale's API does not name the key it joined with. */
  readonly linksDevicesToKeys = false;
  private readonly http: JsonHttpClient;
  private readonly tokenClient: JsonHttpClient;
  private readonly clientId: string;
  private readonly clientSecret: string;
  private token: { value: string; expiresAt: number } | undefined;

  constructor(options: { apiUrl: string; clientId: string; clientSecret: string; loginServer?: string }) {
    this.loginServer = options.loginServer;
    this.clientId = options.clientId;
    this.clientSecret = options.clientSecret;
    this.tokenClient = new JsonHttpClient({ baseUrl: options.apiUrl, authorization: () => Promise.resolve(undefined) });
    this.http = new JsonHttpClient({ baseUrl: options.apiUrl, authorization: async () => `Bearer ${await this.accessToken()}` });
  }

  private async accessToken(): Promise<string> {
    if (this.token && this.token.expiresAt - TOKEN_MARGIN_MS > Date.now()) return this.token.value;
    const response = await this.tokenClient.request<{ access_token: string; expires_in: number }>({
      method: "POST",
      path: "/api/v2/oauth/token",
      form: { grant_type: "client_credentials", client_id: this.clientId, client_secret: this.clientSecret },
    });
    const body = response.body ?? { access_token: "", expires_in: 0 };
    this.token = { value: body.access_token, expiresAt: Date.now() + body.expires_in * 1000 };
    return this.token.value;
  }

  async createAuthKey(request: AuthKeyRequest): Promise<AuthKey> {
    const response = await this.http.request<{ id: string; key: string }>({
      method: "POST",
      path: "/api/v2/tailnet/-/keys",
      body: {
        capabilities: {
          devices: {
            create: { reusable: request.reusable ?? false, ephemeral: request.ephemeral ?? false, preauthorized: true, tags: request.tags },
          },
        },
        expirySeconds: request.expirySeconds ?? 86_400,
        description: KEY_DESCRIPTION,
      },
    });
    return { id: response.body?.id ?? "", key: response.body?.key ?? "" };
  }

  async revokeAuthKey(id: string): Promise<void> {
    await this.http.request({ method: "DELETE", path: `/api/v2/tailnet/-/keys/${encodeURIComponent(id)}`, accept: [404] });
  }

  /**
   * The tailnet's keys as this credential sees them (with an OAuth client: the tailnet's, not only
   * the client's own); details one by one.
   */
  async listAuthKeys(): Promise<AuthKeyRecord[]> {
    const listed = await this.http.request<{ keys?: { id: string }[] }>({ method: "GET", path: "/api/v2/tailnet/-/keys" });
    const ids = (listed.body?.keys ?? []).map((k) => k.id);
    const records: AuthKeyRecord[] = [];
    const now = Date.now();
    const read = async (): Promise<void> => {
      for (let id = ids.shift(); id !== undefined; id = ids.shift()) {
        const response = await this.http.request<TailscaleKey>({ method: "GET", path: `/api/v2/tailnet/-/keys/${encodeURIComponent(id)}`, accept: [404] });
        const key = response.status === 404 ? undefined : response.body;
        const create = key?.capabilities?.devices?.create;
        if (!key || !create) continue;
        const usable = key.invalid !== true && !key.revoked && (Date.parse(key.expires ?? "") || 0) > now;
        records.push({
          id: key.id,
          tags: create.tags ?? [],
          createdAt: Date.parse(key.created ?? "") || Number.POSITIVE_INFINITY,
          usable,
          reusable: create.reusable === true,
          ephemeral: create.ephemeral === true,
          ...(key.description === undefined ? {} : { description: key.description }),
        });
      }
    };
    await Promise.all(Array.from({ length: KEY_READS_IN_FLIGHT }, read));
    return records;
  }

  async listDevices(): Promise<Device[]> {
    const response = await this.http.request<{ devices?: TailscaleDevice[] }>({ method: "GET", path: "/api/v2/tailnet/-/devices" });
    return (response.body?.devices ?? []).map((device) => toDevice(device, ""));
  }

  async getDevice(id: string): Promise<Device | undefined> {
    const response = await this.http.request<TailscaleDevice>({ method: "GET", path: `/api/v2/device/${encodeURIComponent(id)}`, accept: [404] });
    const device = response.status === 404 ? undefined : response.body;
    return device && toDevice(device, id);
  }

  async deleteDevice(id: string): Promise<void> {
    await this.http.request({ method: "DELETE", path: `/api/v2/device/${encodeURIComponent(id)}`, accept: [404] });
  }
}

/** nodeId is the stable id the devices themselves report (tailscaled's Self.ID). */
function toDevice(device: TailscaleDevice, fallbackId: string): Device {
  return { id: device.nodeId ?? device.id ?? fallbackId, hostname: device.hostname ?? device.name ?? "", addresses: device.addresses ?? [], tags: device.tags ?? [] };
}
