// Environment for every tailscaled in the sandbox, devices and proxies alike. Each knob keeps
// tailscaled offline-safe: no log uploads, DERP over plain HTTP to the embedded DERP, no
// UPnP/NAT-PMP probing, and no wait for a "real" network before talking to control.
export const OFFLINE_TAILSCALED_KNOBS: Readonly<Record<string, string>> = {
  TS_NO_LOGS_NO_SUPPORT: "true",
  TS_DEBUG_USE_DERP_HTTP: "1",
  TS_DISABLE_PORTMAPPER: "1",
  TS_ASSUME_NETWORK_UP_FOR_TEST: "1",
};

/** Devices also panic (not silently try) if anything reaches Tailscale's hosted control plane. */
export function tailscaledEnvironment(): NodeJS.ProcessEnv {
  return {
    PATH: process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin",
    ...OFFLINE_TAILSCALED_KNOBS,
    TS_PANIC_IF_HIT_MAIN_CONTROL: "1",
  };
}
