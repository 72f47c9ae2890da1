import type { Api } from '../api';
import { announce, errorText, fmtTime, h, lastSegment } from '../dom';
import type { Route } from '../router';
import { type DeadLetter, userOf } from './types';

const pageSize = 50;

/** deadLettersRoute lists every user's dead letters, oldest first, each with a replay. */
export const deadLettersRoute: Route = {
  title: 'Dead letters',
  admin: true,
  render(root: HTMLElement, api: Api): () => void {
    let stopped = false;
    const tokens: string[] = [''];
    let page = 0;
    let next = '';
    const body = h('tbody');
    const prev = h('button', { type: 'button', class: 'secondary', disabled: true }, 'Previous');
    const more = h('button', { type: 'button', class: 'secondary', disabled: true }, 'Next');
    const refresh = h('button', { type: 'button', class: 'secondary' }, 'Refresh');
    const count = h('p', { class: 'muted', id: 'dead-count', 'aria-live': 'polite' });
    root.append(
      h('h1', {}, 'Dead letters'),
      h('p', { class: 'muted' }, 'Mail the classifier gave up on, every user’s, oldest first. A replay sends it through the classifier again and removes it from this list.'),
      h('div', { class: 'actions' }, refresh),
      count,
      h(
        'div',
        { class: 'scroll' },
        h(
          'table',
          { class: 'stack', id: 'dead-letters' },
          h('caption', { class: 'visually-hidden' }, 'Dead letters of every user'),
          h('thead', {}, h('tr', {}, ...['User', 'Message', 'Mailbox', 'Reason', 'Attempts', 'Given up', ''].map((c) => h('th', { scope: 'col' }, c)))),
          body,
        ),
      ),
      h('nav', { class: 'pager', 'aria-label': 'Pages of dead letters' }, prev, more),
    );
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
    refresh.addEventListener('click', () => void load());

    async function replay(d: DeadLetter, btn: HTMLButtonElement, tr: HTMLElement): Promise<void> {
      btn.disabled = true;
      try {
        await api.post(`/v1/${d.name}:replay`, {});
        if (stopped) return;
        tr.remove();
        announce(`Replayed ${lastSegment(d.message ?? d.name)} of ${userOf(d.name)}: it is being classified again.`);
        if (!body.children.length) void load();
      } catch (e) {
        btn.disabled = false;
        announce('Replay failed: ' + errorText(e), 'error');
      }
    }

    function row(d: DeadLetter): HTMLElement {
      const btn = h('button', { type: 'button', 'aria-label': `Replay ${lastSegment(d.message ?? d.name)} of ${userOf(d.name)}` }, 'Replay');
      const cell = (label: string, ...c: (Node | string)[]) => h('td', { 'data-label': label }, ...c);
      const tr = h(
        'tr',
        { 'data-name': d.name },
        h('th', { scope: 'row' }, userOf(d.name)),
        cell('Message', lastSegment(d.message ?? '')),
        cell('Mailbox', lastSegment(d.mailbox ?? '')),
        cell('Reason', d.reason ?? ''),
        cell('Attempts', String(d.attempts ?? 0)),
        cell('Given up', fmtTime(d.deadTime)),
        cell('', btn),
      );
      btn.addEventListener('click', () => void replay(d, btn, tr));
      return tr;
    }

    async function load(): Promise<void> {
      try {
        const r = await api.get<{ deadLetters?: DeadLetter[]; nextPageToken?: string }>('/v1/users/-/deadLetters', { pageSize, pageToken: tokens[page] });
        if (stopped) return;
        const list = r.deadLetters ?? [];
        next = r.nextPageToken ?? '';
        body.replaceChildren(...list.map(row));
        if (!list.length) body.append(h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'No dead letters: every mail was classified.')));
        count.textContent = `${list.length}${next ? '+' : ''} on this page.`;
        prev.disabled = page === 0;
        more.disabled = !next;
      } catch (e) {
        if (!stopped) announce('Could not list the dead letters: ' + errorText(e), 'error');
      }
    }
    void load();
    return () => {
      stopped = true;
    };
  },
};
