#!/usr/bin/env node
// Entry point of the proxy that runs beside tailscaled in each proxy pod.
await import("../src/proxy/main.ts");
