// The operator's view of a tailnet control plane, sized to what it needs: tagged single-use
// auth keys for new proxies (revocable, so none outlives the Secret that holds it), and device
// lookup, listing and deletion for cleanup.

export interface AuthKeyRequest {
  readonly tags: readonly string[];
  readonly reusable?: boolean;
  readonly ephemeral?: boolean;
  readonly expirySeconds?: number;
}

/** A minted key: the secret itself, and the id that revokes it (safe to log and store in metadata). */
export interface AuthKey {
  readonly id: string;
  readonly key: string;
}

/** A key as the control plane lists it (never the secret): what the orphan sweep decides on. */
export interface AuthKeyRecord {
  readonly id: string;
  readonly tags: readonly string[];
  /** Milliseconds since the epoch, by the control plane's clock. */
  readonly createdAt: number;
  /** Could still join a device: not used (or reusable), not expired, not revoked. */
  readonly usable: boolean;
  /** The operator mints neither kind: such keys are someone else's (node bootstrap keys). */
  readonly reusable: boolean;
  readonly ephemeral: boolean;
  /** The key's description where the control plane keeps one (Tailscale; Headscale has none). */
  readonly description?: string;
}

export interface Device {
  readonly id: string;
  /** The hostname the device reported (tailscaled's --hostname), not its MagicDNS name. */
  readonly hostname: string;
  readonly addresses: readonly string[];
  readonly tags: readonly string[];
  /**
   * The auth key the device joined with, where the control plane keeps that link (Headscale's
   * node record does; Tailscale's API does not say). It finds a device whose id never reached a
   * Secret: its proxy died, or the control plane did, between registering it and reporting it.
   */
  readonly authKeyId?: string;
}

export interface ControlPlane {
  /** What tailscaled's --login-server should be; undefined means Tailscale's default. */
  readonly loginServer: string | undefined;
  /** Whether listed devices name the auth key they joined with (Device.authKeyId). */
  readonly linksDevicesToKeys: boolean;
  createAuthKey(request: AuthKeyRequest): Promise<AuthKey>;
  /** Revokes a key so it joins no device; a used, expired or unknown key is not an error. */
  revokeAuthKey(id: string): Promise<void>;
  /** The keys these credentials created or can see, used and unused. */
  listAuthKeys(): Promise<AuthKeyRecord[]>;
  /** Every device of the tailnet that the credentials can see. */
  listDevices(): Promise<Device[]>;
  /** The device, or undefined if the control plane does not know it. */
  getDevice(id: string): Promise<Device | undefined>;
  /** Deletes the device; a device that is already gone is not an error. */
  deleteDevice(id: string): Promise<void>;
}

/** A failed control-plane call, classified by HTTP status so callers can decide on retries. */
export class ControlPlaneError extends Error {
  override readonly name = "ControlPlaneError";
  readonly status: number;
  readonly retryable: boolean;

  constructor(message: string, status: number, options?: { cause?: unknown }) {
    super(message, options);
    this.status = status;
    // Network failures (status 0), timeouts, throttling and server errors may pass; any other
    // 4xx (bad credentials, tags the policy does not allow, a missing user) will not.
    this.retryable = status === 0 || status === 408 || status === 429 || status >= 500;
  }
}
