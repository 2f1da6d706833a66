// The only place the operator calls fetch: base URL, credentials, timeouts and typed errors.
// Response bodies of failed calls are quoted in errors, request bodies never (they carry keys).
import { ControlPlaneError } from "./control-plane.ts";

export interface HttpRequest {
  readonly method: "GET" | "POST" | "DELETE" | "PUT";
  readonly path: string;
  readonly body?: unknown;
  readonly form?: Readonly<Record<string, string>>;
  /** Statuses that are answers rather than errors (e.g. 404 on a lookup). */
  readonly accept?: readonly number[];
}

export interface HttpResponse<T> {
  readonly status: number;
  readonly body: T | undefined;
}

export class JsonHttpClient {
  private readonly baseUrl: string;
  private readonly authorization: () => Promise<string | undefined>;
  private readonly timeoutMs: number;

  constructor(options: { baseUrl: string; authorization: () => Promise<string | undefined>; timeoutMs?: number }) {
    this.baseUrl = options.baseUrl.replace(/\/$/, "");
    this.authorization = options.authorization;
    this.timeoutMs = options.timeoutMs ?? 15_000;
  }

  async request<T>(req: HttpRequest): Promise<HttpResponse<T>> {
    const headers: Record<string, string> = { accept: "application/json", "user-agent": "tailnet-operator" };
    const auth = await this.authorization();
    if (auth) headers["authorization"] = auth;
    let body: string | undefined;
    if (req.form) {
      headers["content-type"] = "application/x-www-form-urlencoded";
      body = new URLSearchParams(req.form).toString();
    } else if (req.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(req.body);
    }
    const what = `${req.method} ${req.path}`;
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${req.path}`, { method: req.method, headers, body: body ?? null, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (error) {
      throw new ControlPlaneError(`${what}: ${(error as Error).message}`, 0, { cause: error });
    }
    const text = await response.text();
    if (!response.ok && !req.accept?.includes(response.status)) {
      throw new ControlPlaneError(`${what}: HTTP ${response.status}: ${text.slice(0, 300)}`, response.status);
    }
    return { status: response.status, body: text ? (JSON.parse(text) as T) : undefined };
  }
}
