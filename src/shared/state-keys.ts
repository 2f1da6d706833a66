// The state-Secret keys are the contract between the proxy (which writes them) and the operator
// (which reads them). The first three are the Tailscale operator's, so its tooling reads ours.
export const STATE_SECRET_KEYS = {
  deviceId: "device_id",
  deviceFqdn: "device_fqdn",
  deviceIps: "device_ips",
  firewallMode: "tailnet_firewall_mode",
  firewallReason: "tailnet_firewall_reason",
  /** Where the proxy's login stands: "LoggingIn", "Running" or "Failed" (src/shared/login-report.ts). */
  loginState: "tailnet_login_state",
  /** Why the login has not succeeded: the control plane's refusal or tailscaled's health warnings. */
  loginError: "tailnet_login_error",
  /**
   * Which auth key the reported login used (keyFingerprint in src/shared/login-report.ts): a pod
   * still holding a replaced key may report its refusal after the operator replaced it.
   */
  loginKey: "tailnet_login_key",
  /** Why the proxy could not program its forwarding rules (absent when they are in place). */
  firewallError: "tailnet_firewall_error",
  /** Egress proxies: JSON EgressTargetReport (src/shared/egress.ts), what the target resolved to. */
  egressTarget: "tailnet_egress_target",
  /** Ingress proxies: why no certificate can be had (the source's error); absent when serving. */
  certificateError: "tailnet_certificate_error",
  /** Ingress proxies asked for Funnel: "On" once configured, else why it cannot be (the tailnet's policy). */
  funnel: "tailnet_funnel",
  /** Ingress proxies: a failing renewal while a certificate is still served; absent once renewed. */
  certificateRenewalError: "tailnet_certificate_renewal_error",
} as const;

/** STATE_SECRET_KEYS.funnel's value once the proxy has configured Funnel. */
export const FUNNEL_ON = "On";
