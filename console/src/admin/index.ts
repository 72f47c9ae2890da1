import type { Route } from '../router';

/** adminRoutes are the operator's pages, shown to admins only. */
export const adminRoutes: Record<string, Route> = {};
