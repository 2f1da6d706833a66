#!/usr/bin/env node
// Entry point of the operator. The source runs as TypeScript directly (Node >= 24 strips types).
await import("../src/operator/main.ts");
