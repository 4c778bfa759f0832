import type { Config } from '../config/load.js';
import type { Route, RouteRequest, RouteResponse } from '../http/route.js';
import type { LoadedMappingFile } from '../mapping/index.js';
import type { HqReader } from './hq-reader.js';
import { checkQuery, queryConfig, type CheckedQuery, type QueryName } from './query-check.js';
import { queryProduct, queryStores, type QueryAnswer } from './query-product.js';

/** What the query routes and commands need: the configuration and HQ (read-only). */
export interface QueryDeps {
  readonly config: Config;
  readonly hq: HqReader;
  /** The mapping files (default: loaded from the configuration's folder on first use). */
  readonly mappings?: readonly LoadedMappingFile[];
}

/** Answers a query: checked against HQ once (again after a failed check), then one statement per answer. */
export interface ProductQueries {
  answer(name: QueryName, product: string, storeCodes?: readonly string[]): Promise<QueryAnswer>;
}

export function productQueries(deps: QueryDeps): ProductQueries {
  const checked = new Map<QueryName, Promise<CheckedQuery>>();
  const check = (name: QueryName): Promise<CheckedQuery> => {
    let c = checked.get(name);
    if (!c) {
      c = deps.hq.read((db) => checkQuery(deps.config, name, db, deps.mappings));
      c.catch(() => checked.delete(name));
      checked.set(name, c);
    }
    return c;
  };
  return {
    async answer(name, product, storeCodes) {
      const q = queryConfig(deps.config, name); // BL-Q001 before anything else
      const stores = queryStores(deps.config, storeCodes);
      return queryProduct({ hq: deps.hq, query: await check(name), product, stores, tableName: q.table });
    },
  };
}

function productRoute(name: QueryName, deps: QueryDeps | ProductQueries): Route {
  const queries = 'answer' in deps ? deps : productQueries(deps);
  return {
    method: 'GET',
    path: `/${name}/:product`,
    async handle(req: RouteRequest): Promise<RouteResponse> {
      const answer = await queries.answer(name, req.params['product'] ?? '', req.query.getAll('store'));
      return { status: 200, json: answer };
    },
  };
}

/** `GET /stock/:product[?store=S001...]`: the product's stock at every (asked) store, with each store's freshness. */
export function stockRoute(deps: QueryDeps | ProductQueries): Route {
  return productRoute('stock', deps);
}

/** `GET /prices/:product[?store=S001...]`: the product's price at every (asked) store, with each store's freshness. */
export function pricesRoute(deps: QueryDeps | ProductQueries): Route {
  return productRoute('prices', deps);
}
