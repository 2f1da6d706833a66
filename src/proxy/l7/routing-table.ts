// Picks the backend for a request path, with the Ingress API's matching rules: Exact matches the
// whole path; Prefix matches whole path elements (/foo matches /foo and /foo/bar, not /foobar);
// the longest match wins, Exact before Prefix at equal length.
import type { IngressRoute } from "../../shared/ingress-config.ts";

interface CompiledRoute {
  readonly route: IngressRoute;
  /** Path elements of the rule's path; a trailing slash does not count. */
  readonly elements: readonly string[];
}

const elementsOf = (path: string): string[] => path.split("/").filter(Boolean);

/**
 * The order routes are tried in: longest path first, Exact before Prefix at equal length, so the
 * first match is the best. The nginx data plane (nginx-config.ts) gives its locations in this order.
 */
export function byPrecedence(a: IngressRoute, b: IngressRoute): number {
  return b.path.length - a.path.length || (a.pathType === "Exact" ? -1 : 0) - (b.pathType === "Exact" ? -1 : 0);
}

export class RoutingTable {
  private readonly routes: readonly CompiledRoute[];

  constructor(routes: readonly IngressRoute[]) {
    this.routes = [...routes].sort(byPrecedence).map((route) => ({ route, elements: elementsOf(route.path) }));
  }

  /** The route for a request target ("/a/b?x=1"), or undefined for a 404. */
  match(target: string): IngressRoute | undefined {
    const query = target.search(/[?#]/);
    const path = query < 0 ? target : target.slice(0, query);
    let requestElements: string[] | undefined;
    for (const { route, elements } of this.routes) {
      if (route.pathType === "Exact") {
        if (path === route.path) return route;
        continue;
      }
      requestElements ??= elementsOf(path);
      if (elements.length <= requestElements.length && elements.every((element, i) => element === requestElements?.[i])) return route;
    }
    return undefined;
  }
}
