// argv for the sandbox's helper programs (src/sandbox/tools), run by this same Node binary.
import { fileURLToPath } from "node:url";

export function nodeToolArgv(tool: string, args: readonly string[]): string[] {
  return [process.execPath, fileURLToPath(new URL(`./tools/${tool}`, import.meta.url)), ...args];
}
