import type { Api } from './api';

/**
 * Route is one page of the console, shown when the location's hash is its
 * key (`#/mail`). render draws the page into root and returns a cleanup
 * that stops whatever it started (streams, timers) when the page is left.
 */
export type Route = {
  title: string;
  /** admin routes are listed only for admins (the API refuses others anyway). */
  admin?: boolean;
  render(root: HTMLElement, api: Api): () => void;
};

/** Routes maps a hash path (`/mail`) to its page. */
export type Routes = Record<string, Route>;

/** currentPath is the hash route of the location: `#/mail?x=1` → `/mail`. */
export function currentPath(): string {
  const h = location.hash;
  if (!h.startsWith('#/')) return '';
  const q = h.indexOf('?');
  return q < 0 ? h.slice(1) : h.slice(1, q);
}

/** hashParams are the query parameters of the hash (`#/mail?category=work`). */
export function hashParams(): URLSearchParams {
  const h = location.hash;
  const q = h.indexOf('?');
  return new URLSearchParams(q < 0 ? '' : h.slice(q + 1));
}

/** setHashParams replaces the hash's query without adding a history entry per keystroke. */
export function setHashParams(p: URLSearchParams): void {
  const qs = p.toString();
  const next = '#' + currentPath() + (qs ? '?' + qs : '');
  if (next !== location.hash) history.replaceState(null, '', next);
}

/**
 * Router renders the route of the location's hash into root, calling the
 * previous page's cleanup first.
 */
export class Router {
  private cleanup: (() => void) | null = null;

  constructor(
    private readonly routes: Routes,
    private readonly root: HTMLElement,
    private readonly api: Api,
    private readonly fallback: string,
    private readonly onShow: (path: string, route: Route) => void,
  ) {}

  private readonly onHash = () => this.show();

  start(): void {
    window.addEventListener('hashchange', this.onHash);
    this.show();
  }

  /** close ends the current page and stops following the location. */
  close(): void {
    window.removeEventListener('hashchange', this.onHash);
    this.stop();
  }

  /** show renders the current route. */
  show(): void {
    let path = currentPath();
    if (!(path in this.routes)) {
      path = this.fallback;
      history.replaceState(null, '', '#' + path);
    }
    // Every hashchange renders (a link to the page it is on clears its
    // filters; an edited URL applies its own); filters that a page writes
    // into the URL use replaceState, which fires none.
    this.stop();
    const route = this.routes[path];
    this.root.replaceChildren();
    document.title = route.title + ' · mailroom';
    this.onShow(path, route);
    this.cleanup = route.render(this.root, this.api);
  }

  /** stop ends the current page. */
  stop(): void {
    if (this.cleanup) {
      try {
        this.cleanup();
      } catch {
        // a page's cleanup must not keep the next page from showing
      }
    }
    this.cleanup = null;
  }
}
