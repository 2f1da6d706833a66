// Environment for every tailscaled in the sandbox. Each knob keeps tailscaled offline-safe:
// no log uploads, DERP over plain HTTP to the embedded DERP, no UPnP/NAT-PMP probing, and a
// panic (not a silent attempt) if anything tries to reach Tailscale's hosted control plane.
export function tailscaledEnvironment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin",
    TS_NO_LOGS_NO_SUPPORT: "true",
    TS_DEBUG_USE_DERP_HTTP: "1",
    TS_DISABLE_PORTMAPPER: "1",
    TS_ASSUME_NETWORK_UP_FOR_TEST: "1",
    TS_PANIC_IF_HIT_MAIN_CONTROL: "1",
    ...extra,
  };
}
