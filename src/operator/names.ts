// Names the operator shares with the Tailscale operator, so manifests and tooling written for
// it keep working: annotations, labels, the finalizer, the condition and state-Secret keys.
export const ANNOTATIONS = {
  expose: "tailscale.com/expose",
  hostname: "tailscale.com/hostname",
  tags: "tailscale.com/tags",
  tailnetIp: "tailscale.com/tailnet-ip",
  tailnetFqdn: "tailscale.com/tailnet-fqdn",
  proxyGroup: "tailscale.com/proxy-group",
  /** On the config Secret and pod template: the device identity (hostname and tags) it was made for. */
  proxyIdentity: "tailscale.com/proxy-identity",
  /** On an L7 proxy's pod template: how it serves (certificate source, mode); a change restarts it. */
  proxyRestartKey: "tailscale.com/proxy-serving",
  /** On the config Secret and the StatefulSet: the id of the auth key minted for the proxy (never the key). */
  authKeyId: "tailscale.com/auth-key-id",
  /** On the config Secret: the device the proxy last reported, kept when its state Secret is lost. */
  deviceId: "tailscale.com/device-id",
  /** On a state Secret the operator re-made: the device the lost state belonged to. */
  replacesDevice: "tailscale.com/replaces-device",
  /** On an egress Service: its spec as the user wrote it (JSON), put back when egress ends. */
  egressOriginalSpec: "tailscale.com/egress-original-spec",
} as const;

export const LABELS = {
  managed: "tailscale.com/managed",
  parentName: "tailscale.com/parent-resource",
  parentNamespace: "tailscale.com/parent-resource-ns",
  parentType: "tailscale.com/parent-resource-type",
  secretType: "tailscale.com/secret-type",
} as const;

export const FINALIZER = "tailscale.com/finalizer";
export const LOAD_BALANCER_CLASS = "tailscale";
export const PROXY_READY_CONDITION = "TailscaleProxyReady";

export const REASONS = {
  ready: "ProxyReady",
  pending: "ProxyPending",
  /** The proxy cannot start as things are (image, crash loop, scheduling, missing namespace). */
  failed: "ProxyFailed",
  invalid: "ProxyInvalid",
  provisioned: "ProxyProvisioned",
  cleanedUp: "ProxyDeleted",
  controlPlaneError: "ControlPlaneError",
  /** Exposed, but under another name: the hostname asked for belongs to another device. */
  hostnameTaken: "HostnameTaken",
  /** The egress proxy runs but its target is no device (or subnet route) of the tailnet. */
  egressTargetNotFound: "EgressTargetNotFound",
} as const;

export { STATE_SECRET_KEYS } from "../shared/state-keys.ts";
