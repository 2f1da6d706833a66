#!/usr/bin/env node
// Entry point of the operator. The source runs as TypeScript directly (Node >= 24 strips types).
// PID 1 in a container: the kernel drops a SIGTERM it has no handler for, so a pod deleted (or a
// probe failed) while the modules load would wait out its whole grace period. Until main.ts
// installs its own graceful handler (and removes this one), a signal ends the start at once.
import process from "node:process";

const exitDuringStartup = (signal) => process.exit(signal === "SIGINT" ? 130 : 143);
process.once("SIGTERM", exitDuringStartup).once("SIGINT", exitDuringStartup);
await import("../src/operator/main.ts");
