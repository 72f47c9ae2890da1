import type { Api } from '../api';
import { announce, errorText, field, fmtTime, h, lastSegment } from '../dom';
import type { Route } from '../router';
import { shortEnum, type User } from '../user/types';
import { type ApiKey, userOf } from './types';

/** usersRoute lists the users and, per user, their API keys: create one (shown once) or delete one. */
export const usersRoute: Route = {
  title: 'Users and keys',
  admin: true,
  render(root: HTMLElement, api: Api): () => void {
    let stopped = false;
    const tokens: string[] = [''];
    let page = 0;
    let next = '';
    const list = h('ul', { class: 'users', id: 'users' });
    const prev = h('button', { type: 'button', class: 'secondary', disabled: true }, 'Previous');
    const more = h('button', { type: 'button', class: 'secondary', disabled: true }, 'Next');
    root.append(h('h1', {}, 'Users and keys'), list, h('nav', { class: 'pager', 'aria-label': 'Pages of users' }, prev, more));
    prev.addEventListener('click', () => {
      if (page > 0) {
        page--;
        void load();
      }
    });
    more.addEventListener('click', () => {
      if (next) {
        tokens[page + 1] = next;
        page++;
        void load();
      }
    });

    /** keysPanel lists u's keys with a form for a new one. */
    function keysPanel(u: User, id: string): HTMLElement {
      const body = h('tbody');
      const shown = h('div', { class: 'new-key', hidden: true, role: 'alert' });
      const name = h('input', { type: 'text', name: 'display-name', maxlength: 100, autocomplete: 'off', required: true });
      const create = h('button', { type: 'submit' }, 'Create key');
      const form = h('form', { class: 'inline' }, field('Name of the new key', name, 'The key is shown once, here; copy it then.'), create);
      const panel = h(
        'div',
        { class: 'keys-panel', id },
        h(
          'div',
          { class: 'scroll' },
          h(
            'table',
            { class: 'stack' },
            h('caption', { class: 'visually-hidden' }, `API keys of ${userOf(u.name)}`),
            h('thead', {}, h('tr', {}, ...['Key', 'Name', 'Created', 'Last used', ''].map((c) => h('th', { scope: 'col' }, c)))),
            body,
          ),
        ),
        form,
        shown,
      );
      async function refresh(): Promise<void> {
        try {
          const r = await api.get<{ apiKeys?: ApiKey[] }>(`/v1/${u.name}/apiKeys`, { pageSize: 1000 });
          if (stopped) return;
          const keys = r.apiKeys ?? [];
          body.replaceChildren(
            ...keys.map((k) => {
              const del = h('button', { type: 'button', class: 'danger', 'aria-label': `Delete key ${k.prefix ?? lastSegment(k.name)} of ${userOf(u.name)}` }, 'Delete');
              del.addEventListener('click', async () => {
                if (!confirm(`Delete the key ${k.prefix ?? ''}… (${k.displayName ?? lastSegment(k.name)}) of ${userOf(u.name)}? Whatever uses it stops working.`)) return;
                del.disabled = true;
                try {
                  await api.delete(`/v1/${k.name}`);
                  announce(`Deleted the key ${k.prefix ?? lastSegment(k.name)}.`);
                  void refresh();
                } catch (e) {
                  del.disabled = false;
                  announce('Could not delete the key: ' + errorText(e), 'error');
                }
              });
              const cell = (label: string, ...c: (Node | string)[]) => h('td', { 'data-label': label }, ...c);
              return h(
                'tr',
                { 'data-name': k.name },
                h('th', { scope: 'row' }, h('code', {}, (k.prefix ?? '') + '…')),
                cell('Name', k.displayName ?? ''),
                cell('Created', fmtTime(k.createTime)),
                cell('Last used', k.lastUseTime ? fmtTime(k.lastUseTime) : 'never'),
                cell('', del),
              );
            }),
          );
          if (!keys.length) body.append(h('tr', {}, h('td', { colspan: 5, class: 'empty' }, 'No API key.')));
        } catch (e) {
          announce('Could not list the keys: ' + errorText(e), 'error');
        }
      }
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        create.disabled = true;
        try {
          const k = await api.post<ApiKey>(`/v1/${u.name}/apiKeys`, { displayName: name.value.trim() });
          name.value = '';
          const out = h('input', { type: 'text', readonly: true, value: k.key ?? '', 'aria-label': 'The new API key', spellcheck: 'false' });
          shown.replaceChildren(h('p', {}, h('strong', {}, 'New key, shown only now: '), 'copy it and hand it over; mailroom keeps only its hash.'), out);
          shown.hidden = false;
          out.focus();
          out.select();
          void refresh();
        } catch (e) {
          announce('Could not create the key: ' + errorText(e), 'error');
        } finally {
          create.disabled = false;
        }
      });
      void refresh();
      return panel;
    }

    function item(u: User & { createTime?: string }): HTMLElement {
      const id = 'keys-' + userOf(u.name);
      const toggle = h('button', { type: 'button', class: 'secondary', 'aria-expanded': 'false', 'aria-controls': id }, 'API keys');
      const li = h(
        'li',
        { class: 'card user', 'data-name': u.name },
        h('h2', {}, userOf(u.name), u.role ? h('span', { class: 'role' }, shortEnum(u.role, 'ROLE_')) : null),
        h('p', { class: 'muted' }, [u.displayName, u.email].filter(Boolean).join(' · ') || ' '),
        u.createTime ? h('p', { class: 'hint' }, 'Since ' + fmtTime(u.createTime)) : null,
        toggle,
      );
      let panel: HTMLElement | null = null;
      toggle.addEventListener('click', () => {
        const open = toggle.getAttribute('aria-expanded') === 'true';
        toggle.setAttribute('aria-expanded', String(!open));
        if (open) {
          panel?.remove();
          panel = null;
        } else {
          panel = keysPanel(u, id);
          li.append(panel);
        }
      });
      return li;
    }

    async function load(): Promise<void> {
      try {
        const r = await api.get<{ users?: (User & { createTime?: string })[]; nextPageToken?: string }>('/v1/users', { pageSize: 50, pageToken: tokens[page] });
        if (stopped) return;
        next = r.nextPageToken ?? '';
        list.replaceChildren(...(r.users ?? []).map(item));
        prev.disabled = page === 0;
        more.disabled = !next;
      } catch (e) {
        if (!stopped) announce('Could not list the users: ' + errorText(e), 'error');
      }
    }
    void load();
    return () => {
      stopped = true;
    };
  },
};
