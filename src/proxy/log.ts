// The proxy's structured logger: JSON lines in pino's shape (level label, ISO time, name, msg, err
// with type/message/stack) and the same redaction as src/shared/log.ts, without loading pino.
// One proxy runs per exposed Service, so every MiB the supervisor keeps is paid per Service;
// pino costs ~5 MiB RSS here for features the proxy never uses (docs/adr/0013).
const LEVELS = { debug: 20, info: 30, warn: 40, error: 50 } as const;
export type Level = keyof typeof LEVELS;

/** Keys whose values never reach a log line, at any depth (src/shared/log.ts redacts the same). */
const SECRET_KEYS = new Set(["authKey", "token", "apiKey", "clientSecret", "password", "authorization"]);

export interface Logger {
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
  /** A logger that adds these fields to every line. */
  child(bindings: object): Logger;
}

function serializeError(error: Error): Record<string, unknown> {
  return { type: error.name, message: error.message, stack: error.stack, ...(error.cause instanceof Error ? { cause: serializeError(error.cause) } : {}) };
}

function replacer(key: string, value: unknown): unknown {
  if (SECRET_KEYS.has(key)) return "[redacted]";
  if (value instanceof Error) return serializeError(value);
  return value;
}

export function createProxyLogger(options: { name: string; level?: Level; write?: (line: string) => void; bindings?: object }): Logger {
  const threshold = LEVELS[options.level ?? "info"];
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const emit = (level: Level, obj: object | string, msg?: string): void => {
    if (LEVELS[level] < threshold) return;
    const fields = typeof obj === "string" ? { msg: obj } : { ...obj, ...(msg === undefined ? {} : { msg }) };
    const record = { level, time: new Date().toISOString(), pid: process.pid, name: options.name, ...options.bindings, ...fields };
    let line: string;
    try {
      line = JSON.stringify(record, replacer);
    } catch {
      // A cycle or a BigInt: keep the message rather than lose the line.
      line = JSON.stringify({ level, time: record.time, name: options.name, msg: typeof obj === "string" ? obj : (msg ?? "") });
    }
    write(`${line}\n`);
  };
  return {
    debug: (obj, msg) => { emit("debug", obj, msg); },
    info: (obj, msg) => { emit("info", obj, msg); },
    warn: (obj, msg) => { emit("warn", obj, msg); },
    error: (obj, msg) => { emit("error", obj, msg); },
    child: (bindings) => createProxyLogger({ ...options, bindings: { ...options.bindings, ...bindings } }),
  };
}
