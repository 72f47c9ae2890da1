import type { Api } from '../api';
import { announce, errorText, fmtTime, h, lastSegment } from '../dom';
import type { Route } from '../router';
import { num, shortEnum, type SyncJob } from '../user/types';
import { fmtNum, userOf } from './types';

const pageSize = 50;

/** syncsRoute lists every user's sync jobs, newest first, refreshed while any runs. */
export const syncsRoute: Route = {
  title: 'Syncs',
  admin: true,
  render(root: HTMLElement, api: Api): () => void {
    let stopped = false;
    let timer = 0;
    /** tokens[i] is the page token of page i (page 0: none). */
    const tokens: string[] = [''];
    let page = 0;
    let next = '';
    const body = h('tbody');
    const prev = h('button', { type: 'button', class: 'secondary', disabled: true }, 'Newer');
    const more = h('button', { type: 'button', class: 'secondary', disabled: true }, 'Older');
    const where = h('span', { class: 'muted' });
    const note = h('p', { class: 'hint', 'aria-live': 'polite' });
    root.append(
      h('h1', {}, 'Syncs'),
      h('p', { class: 'muted' }, 'Every user’s sync jobs, newest first. Running jobs refresh every few seconds.'),
      note,
      h(
        'div',
        { class: 'scroll' },
        h(
          'table',
          { class: 'stack', id: 'syncs' },
          h('caption', { class: 'visually-hidden' }, 'Sync jobs of every user'),
          h('thead', {}, h('tr', {}, ...['User', 'Mailbox', 'State', 'Progress', 'Started', 'Ended'].map((c) => h('th', { scope: 'col' }, c)))),
          body,
        ),
      ),
      h('nav', { class: 'pager', 'aria-label': 'Pages of sync jobs' }, prev, where, more),
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

    function row(j: SyncJob): HTMLElement {
      const state = shortEnum(j.state, 'SYNC_JOB_STATE_');
      const p = j.progress ?? {};
      const listed = num(p.listed);
      const fetched = num(p.fetched);
      const prog = h(
        'div',
        {},
        listed ? h('progress', { max: listed, value: fetched, 'aria-label': `Fetched ${fetched} of ${listed}` }) : null,
        h('span', {}, `${fmtNum(fetched)}${listed ? ' of ' + fmtNum(listed) : ''} fetched, ${fmtNum(num(p.published))} published, ${fmtNum(num(p.classified))} classified${num(p.failed) ? `, ${fmtNum(num(p.failed))} failed` : ''}`),
      );
      const cell = (label: string, ...c: (Node | string)[]) => h('td', { 'data-label': label }, ...c);
      return h(
        'tr',
        { 'data-name': j.name, 'data-state': state },
        h('th', { scope: 'row' }, userOf(j.name)),
        cell('Mailbox', lastSegment(j.mailbox ?? '')),
        cell('State', h('span', { class: 'state-' + state }, state)),
        cell('Progress', prog),
        cell('Started', fmtTime(j.createTime)),
        cell('Ended', j.endTime ? fmtTime(j.endTime) : '–', j.error ? h('span', { class: 'error' }, ' ' + j.error) : ''),
      );
    }

    async function load(): Promise<void> {
      clearTimeout(timer);
      try {
        const r = await api.get<{ syncJobs?: SyncJob[]; nextPageToken?: string }>('/v1/users/-/syncJobs', { pageSize, pageToken: tokens[page] });
        if (stopped) return;
        const jobs = r.syncJobs ?? [];
        next = r.nextPageToken ?? '';
        body.replaceChildren(...jobs.map(row));
        if (!jobs.length) body.append(h('tr', {}, h('td', { colspan: 6, class: 'empty' }, 'No sync job yet.')));
        prev.disabled = page === 0;
        more.disabled = !next;
        where.textContent = `Page ${page + 1}`;
        const running = jobs.filter((j) => /PENDING|RUNNING/.test(j.state ?? '')).length;
        note.textContent = running ? `${running} running.` : '';
        if (running) timer = window.setTimeout(load, 3000);
        else timer = window.setTimeout(load, 15000);
      } catch (e) {
        if (!stopped) announce('Could not list the sync jobs: ' + errorText(e), 'error');
      }
    }
    void load();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  },
};
