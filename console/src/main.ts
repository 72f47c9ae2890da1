import './style.css';
import { Api } from './api';
import { adminRoutes } from './admin/index';
import { announce, errorText, field, h } from './dom';
import { Router, type Route, type Routes } from './router';
import { Session } from './session';
import { mailRoute } from './user/mail';
import { mailboxesRoute } from './user/mailboxes';
import { taxonomyRoute } from './user/taxonomy';

const userRoutes: Routes = {
  '/mail': mailRoute,
  '/mailboxes': mailboxesRoute,
  '/taxonomy': taxonomyRoute,
};

const session = new Session();
const api = new Api(session.token, session.unauthenticated);
const main = document.getElementById('main')!;
const nav = document.getElementById('nav')!;
const who = document.getElementById('who')!;

let router: Router | null = null;

/** routes are the pages this session may open: admin pages for admins only. */
function routes(): Routes {
  const r: Routes = { ...userRoutes };
  if (session.isAdmin) Object.assign(r, adminRoutes);
  return r;
}

function drawNav(rs: Routes, current: string): void {
  const links = Object.entries(rs).map(([path, route]) =>
    h('li', {}, h('a', { href: '#' + path, 'aria-current': path === current ? 'page' : null, class: route.admin ? 'admin' : null }, route.title)),
  );
  nav.replaceChildren(h('ul', {}, ...links));
}

function signedIn(): void {
  const id = session.identity!;
  who.replaceChildren(
    h('span', { class: 'user' }, id.user + (session.isAdmin ? ' (admin)' : '')),
    h('button', { type: 'button', class: 'link', onclick: () => session.logout() }, 'Sign out'),
  );
  const rs = routes();
  router = new Router(rs, main, api, '/mail', (path: string, _route: Route) => {
    drawNav(rs, path);
    announce('');
    main.focus({ preventScroll: true });
  });
  router.start();
}

function signedOut(why?: string): void {
  router?.close();
  router = null;
  nav.replaceChildren();
  who.replaceChildren();
  document.title = 'Sign in · mailroom';
  const key = h('input', { type: 'password', name: 'api-key', autocomplete: 'off', spellcheck: 'false', required: true });
  const err = h('p', { class: 'error', role: 'alert', hidden: !why }, why ?? '');
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h(
    'form',
    { class: 'card login', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Sign in'),
    h(
      'p',
      {},
      'Paste your mailroom API key. The console trades it for a short-lived token; the key is kept in this page’s memory only (never stored), and a reload asks for it again.',
    ),
    field('API key', key),
    err,
    submit,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    err.hidden = true;
    const k = key.value;
    key.value = '';
    try {
      await session.login(k);
    } catch (e) {
      err.textContent = errorText(e);
      err.hidden = false;
      key.focus();
    } finally {
      submit.disabled = false;
    }
  });
  main.replaceChildren(form);
  key.focus();
}

session.onChange((inn, why) => (inn ? signedIn() : signedOut(why)));

// The skip link moves focus without touching the hash (the router's).
document.querySelector('a.skip')?.addEventListener('click', (ev) => {
  ev.preventDefault();
  main.focus();
});

signedOut();
