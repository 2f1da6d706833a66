// Structured JSON logging. Keys that can carry secrets are redacted here, once, so a caller
// that logs a whole object cannot leak an auth key or token by accident.
import { pino, type Logger as PinoLogger, type LevelWithSilent } from "pino";

export type Logger = PinoLogger;

const REDACTED_PATHS = [
  "authKey",
  "*.authKey",
  "token",
  "*.token",
  "apiKey",
  "*.apiKey",
  "clientSecret",
  "*.clientSecret",
  "password",
  "*.password",
  "headers.authorization",
  "*.headers.authorization",
];

export function createLogger(options: { name: string; level?: LevelWithSilent; destination?: NodeJS.WritableStream }): Logger {
  return pino(
    {
      name: options.name,
      level: options.level ?? "info",
      redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? process.stderr,
  );
}
