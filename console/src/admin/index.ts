import type { Route } from '../router';
import './admin.css';
import { deadLettersRoute } from './deadletters';
import { limiterRoute } from './limiter';
import { spendRoute } from './spend';
import { syncsRoute } from './syncs';
import { usersRoute } from './users';

/** adminRoutes are the operator's pages, shown to admins only. */
export const adminRoutes: Record<string, Route> = {
  '/admin/limiter': limiterRoute,
  '/admin/spend': spendRoute,
  '/admin/syncs': syncsRoute,
  '/admin/dead-letters': deadLettersRoute,
  '/admin/users': usersRoute,
};
