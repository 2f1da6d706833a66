// --help and --version handling shared by the project's programs.
import { readFileSync } from "node:fs";

export function projectVersion(): string {
  return (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
}

/** Prints help or version when asked; returns true if the program should exit right after. */
export function answerInfoFlags(args: readonly string[], help: string): boolean {
  if (args.includes("--version")) {
    process.stdout.write(`${projectVersion()}\n`);
    return true;
  }
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(help);
    return true;
  }
  return false;
}
