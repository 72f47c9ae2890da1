import type { Api, Stream } from '../api';
import { announce, errorText, field, fmtTime, h, lastSegment } from '../dom';
import { hashParams, setHashParams, type Route } from '../router';
import { num, shortEnum, type ListMessagesResponse, type Mailbox, type Message, type Stats, type Taxonomy } from './types';

/** groupSize is how many messages each category group shows before "Show all". */
const groupSize = 5;
/** sweepSize is the page of newest mail that the groups are filled from. */
const sweepSize = 100;
/** defaultPageSize is the page of the list of one category, unless the URL says (pageSize=, 1 to 100). */
const defaultPageSize = 25;

function pageSizeOf(p: URLSearchParams): number {
  const n = Number(p.get('pageSize'));
  return Number.isInteger(n) && n >= 1 && n <= 100 ? n : defaultPageSize;
}
/** pendingGroup is the group of messages not classified yet. */
const pendingGroup = '(unclassified)';

type Filters = { category: string; mailbox: string; needsReply: boolean; since: string; until: string; pageSize: number };

function readFilters(): Filters {
  const p = hashParams();
  return {
    category: p.get('category') ?? '',
    mailbox: p.get('mailbox') ?? '',
    needsReply: p.get('needsReply') === 'true',
    since: p.get('since') ?? '',
    until: p.get('until') ?? '',
    pageSize: pageSizeOf(p),
  };
}

function writeFilters(f: Filters): void {
  const p = new URLSearchParams();
  if (f.category) p.set('category', f.category);
  if (f.mailbox) p.set('mailbox', f.mailbox);
  if (f.needsReply) p.set('needsReply', 'true');
  if (f.since) p.set('since', f.since);
  if (f.until) p.set('until', f.until);
  if (f.pageSize !== defaultPageSize) p.set('pageSize', String(f.pageSize));
  setHashParams(p);
}

const quote = (s: string) => JSON.stringify(s);

/** localMidnight is the RFC 3339 instant of the start of a yyyy-mm-dd day in the reader's zone. */
function localMidnight(day: string, plusDays = 0): string {
  const [y, m, d] = day.split('-').map(Number);
  return new Date(y, m - 1, d + plusDays).toISOString();
}

/** filterOf is the AIP-160 filter of ListMessages for f, in group (a category, the unclassified, or all). */
export function filterOf(f: Filters, group: string): string {
  const t: string[] = [];
  if (group === pendingGroup) t.push('classified = false');
  else if (group) t.push(`category = ${quote(group)}`);
  if (f.mailbox) t.push(`mailbox = ${quote(f.mailbox)}`);
  if (f.needsReply) t.push('needs_reply = true');
  if (f.since) t.push(`received_time >= ${quote(localMidnight(f.since))}`);
  if (f.until) t.push(`received_time < ${quote(localMidnight(f.until, 1))}`);
  return t.join(' AND ');
}

/** matches says whether m belongs in group under f (for mail that streams in). */
function matches(m: Message, f: Filters, group: string): boolean {
  const cat = m.classification?.category ?? '';
  if (group === pendingGroup ? cat !== '' : cat !== group) return false;
  if (f.mailbox && m.mailbox !== f.mailbox) return false;
  if (f.needsReply && !m.classification?.needsReply) return false;
  const t = m.receivedTime ? Date.parse(m.receivedTime) : NaN;
  if (f.since && !(t >= Date.parse(localMidnight(f.since)))) return false;
  if (f.until && !(t < Date.parse(localMidnight(f.until, 1)))) return false;
  return true;
}

export const mailRoute: Route = {
  title: 'Mail',
  render(root: HTMLElement, api: Api): () => void {
    let f = readFilters();
    let categories: string[] = [];
    let mailboxes: Mailbox[] = [];
    let stats: Stats = {};
    let stream: Stream | null = null;
    let stopped = false;
    let cursor = '';
    let statsTimer = 0;
    let retryTimer = 0;
    /** lists maps a group to its <ol>; rows a message name to its <li>. */
    const lists = new Map<string, HTMLOListElement>();
    const rows = new Map<string, HTMLLIElement>();
    /** page tokens of the single-category view: tokens[i] fetches page i. */
    let tokens: string[] = [''];
    let pageIdx = 0;

    const summary = h('nav', { class: 'cats', 'aria-label': 'Categories' });
    const groupsEl = h('div', { class: 'groups' });
    const live = h('p', { class: 'live', 'aria-live': 'polite' });

    // Filters.
    const catSel = h('select', { name: 'category' });
    const boxSel = h('select', { name: 'mailbox' });
    const needs = h('input', { type: 'checkbox', name: 'needs-reply' });
    const since = h('input', { type: 'date', name: 'since' });
    const until = h('input', { type: 'date', name: 'until' });
    const filterForm = h(
      'form',
      { class: 'filters', 'aria-label': 'Filter mail' },
      field('Category', catSel),
      field('Mailbox', boxSel),
      field('From', since),
      field('Until', until),
      h('div', { class: 'field check' }, needs, h('label', { for: (needs.id = 'needs-reply') }, 'Needs a reply')),
      h(
        'button',
        {
          type: 'button',
          class: 'secondary',
          onclick: () => {
            catSel.value = boxSel.value = since.value = until.value = '';
            needs.checked = false;
            filterForm.dispatchEvent(new Event('change'));
          },
        },
        'Clear filters',
      ),
    );
    filterForm.addEventListener('change', () => {
      f = { category: catSel.value, mailbox: boxSel.value, needsReply: needs.checked, since: since.value, until: until.value, pageSize: f.pageSize };
      writeFilters(f);
      tokens = [''];
      pageIdx = 0;
      void load();
    });
    filterForm.addEventListener('submit', (ev) => ev.preventDefault());

    root.append(
      h('h1', {}, 'Mail'),
      h('section', { 'aria-labelledby': 'cats-h', class: 'summary' }, h('h2', { id: 'cats-h', class: 'visually-hidden' }, 'Categories'), summary),
      filterForm,
      live,
      groupsEl,
    );

    function drawSelects(): void {
      const cats = new Set(categories);
      for (const c of stats.categories ?? []) cats.add(c.category);
      catSel.replaceChildren(
        h('option', { value: '' }, 'All categories'),
        ...[...cats].sort().map((c) => h('option', { value: c, selected: c === f.category }, c)),
        h('option', { value: pendingGroup, selected: f.category === pendingGroup }, 'Unclassified'),
      );
      boxSel.replaceChildren(
        h('option', { value: '' }, 'All mailboxes'),
        ...mailboxes.map((m) => h('option', { value: m.name, selected: m.name === f.mailbox }, m.displayName || m.address || lastSegment(m.name))),
      );
      needs.checked = f.needsReply;
      since.value = f.since;
      until.value = f.until;
    }

    function countOf(group: string): number {
      if (group === pendingGroup) return num(stats.pending) + num(stats.failed);
      return num(stats.categories?.find((c) => c.category === group)?.count);
    }

    function drawSummary(): void {
      const chip = (group: string, label: string, n: number) =>
        h(
          'button',
          {
            type: 'button',
            class: 'chip',
            'aria-pressed': f.category === group ? 'true' : 'false',
            'data-category': group,
            onclick: () => {
              f.category = f.category === group ? '' : group;
              catSel.value = f.category;
              filterForm.dispatchEvent(new Event('change'));
            },
          },
          label + ' ',
          h('span', { class: 'count' }, String(n)),
        );
      const cats = (stats.categories ?? []).filter((c) => num(c.count) > 0);
      const pending = countOf(pendingGroup);
      summary.replaceChildren(
        h('span', { class: 'total' }, `${num(stats.total)} messages`),
        ...cats.map((c) => chip(c.category, c.category, num(c.count))),
        ...(pending > 0 ? [chip(pendingGroup, "unclassified", pending)] : []),
      );
    }

    function scheduleStats(): void {
      clearTimeout(statsTimer);
      statsTimer = window.setTimeout(async () => {
        try {
          stats = await api.get<Stats>('/v1/users/me/stats');
          if (!stopped) {
            drawSummary();
            for (const [g, ol] of lists) {
              const c = ol.closest('section')?.querySelector('.count');
              if (c) c.textContent = String(countOf(g));
            }
          }
        } catch {
          // counts catch up at the next change
        }
      }, 300);
    }

    function row(m: Message): HTMLLIElement {
      const cls = m.classification;
      const cat = cls?.category || '';
      const detailsId = 'd-' + lastSegment(m.name);
      const details = h('div', { class: 'details', id: detailsId, hidden: true });
      const toggle = h(
        'button',
        { type: 'button', class: 'msg', 'aria-expanded': 'false', 'aria-controls': detailsId },
        h('span', { class: 'subject' }, m.subject || '(no subject)'),
        h('span', { class: 'from' }, m.from || ''),
        h('time', { datetime: m.receivedTime ?? '' }, fmtTime(m.receivedTime)),
        cls?.needsReply ? h('span', { class: 'badge' }, 'needs reply') : null,
      );
      toggle.addEventListener('click', () => {
        const open = toggle.getAttribute('aria-expanded') === 'true';
        toggle.setAttribute('aria-expanded', open ? 'false' : 'true');
        details.hidden = open;
        if (!open) drawDetails(details, m);
      });
      const li = h('li', { class: 'message', 'data-name': m.name, 'data-category': cat }, toggle, details);
      return li;
    }

    function drawDetails(el: HTMLElement, m: Message): void {
      const cls = m.classification;
      const dl = h(
        'dl',
        {},
        h('dt', {}, 'From'),
        h('dd', {}, m.from || '—'),
        h('dt', {}, 'To'),
        h('dd', {}, (m.to ?? []).join(', ') || '—'),
        h('dt', {}, 'Received'),
        h('dd', {}, fmtTime(m.receivedTime) || '—'),
        h('dt', {}, 'Mailbox'),
        h('dd', {}, mailboxLabel(m.mailbox)),
        h('dt', {}, 'Category'),
        h('dd', { class: 'category' }, cls?.category || 'not classified yet (' + shortEnum(m.state, 'MESSAGE_STATE_') + ')'),
        cls ? [h('dt', {}, 'Decided by'), h('dd', { class: 'source' }, sourceText(cls))] : null,
        cls?.reason ? [h('dt', {}, 'Reason'), h('dd', { class: 'reason' }, cls.reason)] : null,
        cls?.confidence ? [h('dt', {}, 'Confidence'), h('dd', {}, Math.round(cls.confidence * 100) + ' %')] : null,
        m.attachmentNames?.length ? [h('dt', {}, 'Attachments'), h('dd', {}, m.attachmentNames.join(', '))] : null,
      );
      const snippet = m.snippet ? h('p', { class: 'snippet' }, m.snippet) : null;
      const choices = categories.filter((c) => c !== cls?.category);
      const correct = h(
        'div',
        { class: 'correct', role: 'group', 'aria-label': 'Move to category' },
        h('span', { class: 'label' }, 'Move to:'),
        ...choices.map((c) => h('button', { type: 'button', class: 'chip', onclick: () => void correctTo(m, c) }, c)),
      );
      el.replaceChildren(dl, snippet ?? '', cls || m.state === 'MESSAGE_STATE_FAILED' || m.state === 'MESSAGE_STATE_PENDING' ? correct : '');
    }

    function mailboxLabel(name?: string): string {
      if (!name) return '—';
      const mb = mailboxes.find((b) => b.name === name);
      return mb ? mb.displayName || mb.address || lastSegment(name) : lastSegment(name);
    }

    async function correctTo(m: Message, category: string): Promise<void> {
      try {
        const updated = await api.patch<Message>('/v1/' + m.name.replace(/^users\/[^/]+/, 'users/me'), { classification: { category } }, { updateMask: 'classification.category' });
        place(updated, true);
        announce(`Moved “${updated.subject || '(no subject)'}” to ${category}.`);
        scheduleStats();
      } catch (e) {
        announce('Could not correct the category: ' + errorText(e), 'error');
      }
    }

    /** place puts m in the group it now belongs to (or drops it), keeping the order newest first. */
    function place(m: Message, open = false): void {
      const old = rows.get(m.name);
      const wasOpen = open || old?.querySelector('.msg')?.getAttribute('aria-expanded') === 'true';
      const oldList = old?.parentElement;
      old?.remove();
      rows.delete(m.name);
      // The unclassified group goes once its last message is classified.
      if (oldList && !oldList.children.length && !f.category && lists.get(pendingGroup) === oldList) {
        oldList.closest('section')?.remove();
        lists.delete(pendingGroup);
      }
      const group = m.classification?.category || pendingGroup;
      if (!matches(m, f, group)) return;
      let ol = lists.get(group);
      if (!ol && !f.category) ol = addGroup(group, true);
      // New mail shows on the first page of a category, not among older pages.
      if (!ol || (f.category && pageIdx > 0 && !old)) return;
      const li = row(m);
      const t = m.receivedTime ? Date.parse(m.receivedTime) : 0;
      const before = [...ol.children].find((c) => {
        const ct = Date.parse((c.querySelector('time') as HTMLTimeElement | null)?.dateTime ?? '');
        return Number.isFinite(ct) && ct < t;
      });
      ol.insertBefore(li, before ?? null);
      rows.set(m.name, li);
      // A group shows its newest few; the rest are behind "Show all".
      while (!f.category && ol.children.length > groupSize) {
        const last = ol.lastElementChild as HTMLLIElement;
        rows.delete(last.dataset.name ?? '');
        last.remove();
      }
      if (!li.isConnected) return;
      ol.closest('section')?.querySelector('.empty')?.remove();
      if (wasOpen) li.querySelector<HTMLButtonElement>('.msg')?.click();
      if (open) li.querySelector<HTMLButtonElement>('.msg')?.focus();
    }

    function addGroup(group: string, prepend = false): HTMLOListElement {
      const label = group === pendingGroup ? 'unclassified' : group;
      const hid = 'g-' + label.replace(/[^a-z0-9-]/gi, '_');
      const ol = h('ol', { class: 'messages', 'aria-labelledby': hid });
      const more = !f.category
        ? h(
            'button',
            {
              type: 'button',
              class: 'link',
              onclick: () => {
                f.category = group;
                catSel.value = group;
                filterForm.dispatchEvent(new Event('change'));
              },
            },
            `Show all ${label}`,
          )
        : null;
      const sec = h(
        'section',
        { class: 'group', 'data-group': group },
        h('h2', { id: hid }, label + ' ', h('span', { class: 'count', 'aria-label': 'messages' }, String(countOf(group)))),
        ol,
        more,
      );
      groupsEl.querySelector(':scope > p.empty')?.remove();
      if (prepend) groupsEl.prepend(sec);
      else groupsEl.append(sec);
      lists.set(group, ol);
      return ol;
    }

    /** gen counts loads: a load that a newer one overtook draws nothing. */
    let gen = 0;

    async function load(): Promise<void> {
      const my = ++gen;
      const stale = () => stopped || my !== gen;
      live.textContent = 'Loading…';
      groupsEl.setAttribute('aria-busy', 'true');
      try {
        const [st, tx, mb] = await Promise.all([
          api.get<Stats>('/v1/users/me/stats'),
          api.get<Taxonomy>('/v1/users/me/taxonomy'),
          api.get<{ mailboxes?: Mailbox[] }>('/v1/users/me/mailboxes', { pageSize: 1000 }),
        ]);
        if (stale()) return;
        stats = st;
        categories = (tx.categories ?? []).map((c) => c.name);
        mailboxes = mb.mailboxes ?? [];
        drawSelects();
        drawSummary();
        groupsEl.replaceChildren();
        lists.clear();
        rows.clear();
        if (f.category) {
          await loadPage(stale);
        } else {
          const groups = (stats.categories ?? []).filter((c) => num(c.count) > 0).map((c) => c.category);
          if (countOf(pendingGroup) > 0) groups.push(pendingGroup);
          // One page of the newest mail fills most groups; only the groups
          // it leaves short are asked for on their own (few requests, well
          // under the per-credential rate limit).
          const newest = await api.get<ListMessagesResponse>('/v1/users/me/messages', { filter: filterOf(f, ''), pageSize: sweepSize });
          if (stale()) return;
          const byGroup = new Map<string, Message[]>(groups.map((g) => [g, []]));
          for (const m of newest.messages ?? []) {
            const g = byGroup.get(m.classification?.category || pendingGroup);
            if (g && g.length < groupSize) g.push(m);
          }
          const complete = !newest.nextPageToken;
          const short = groups.filter((g) => !complete && byGroup.get(g)!.length < Math.min(groupSize, countOf(g)));
          const more = await Promise.all(
            short.map((g) => api.get<ListMessagesResponse>('/v1/users/me/messages', { filter: filterOf(f, g), pageSize: groupSize })),
          );
          if (stale()) return;
          short.forEach((g, i) => byGroup.set(g, more[i].messages ?? []));
          groups.forEach((g) => {
            const msgs = byGroup.get(g) ?? [];
            if (!msgs.length && (f.mailbox || f.needsReply || f.since || f.until)) return;
            const ol = addGroup(g);
            for (const m of msgs) {
              const li = row(m);
              ol.append(li);
              rows.set(m.name, li);
            }
          });
          if (!groups.length) groupsEl.append(h('p', { class: 'empty' }, 'No mail yet. Connect a mailbox or import mail; it appears here as it is classified.'));
          else if (!lists.size) groupsEl.append(h('p', { class: 'empty' }, 'No messages match the filters.'));
        }
        live.textContent = '';
        groupsEl.setAttribute('aria-busy', 'false');
      } catch (e) {
        if (stale()) return;
        live.textContent = '';
        groupsEl.setAttribute('aria-busy', 'false');
        announce('Could not load mail: ' + errorText(e), 'error');
      }
    }

    async function loadPage(stale = () => stopped): Promise<void> {
      const res = await api.get<ListMessagesResponse>('/v1/users/me/messages', { filter: filterOf(f, f.category), pageSize: f.pageSize, pageToken: tokens[pageIdx] });
      if (stale()) return;
      groupsEl.replaceChildren();
      lists.clear();
      rows.clear();
      const ol = addGroup(f.category);
      for (const m of res.messages ?? []) {
        const li = row(m);
        ol.append(li);
        rows.set(m.name, li);
      }
      if (!res.messages?.length) ol.after(h('p', { class: 'empty' }, 'No messages match.'));
      if (res.nextPageToken) tokens[pageIdx + 1] = res.nextPageToken;
      else tokens.length = pageIdx + 1;
      const prev = h('button', { type: 'button', class: 'secondary', disabled: pageIdx === 0 }, 'Newer');
      const next = h('button', { type: 'button', class: 'secondary', disabled: !res.nextPageToken }, 'Older');
      const turn = (by: number) => {
        pageIdx += by;
        groupsEl.setAttribute('aria-busy', 'true');
        void loadPage()
          .catch((e) => announce('Could not load mail: ' + errorText(e), 'error'))
          .finally(() => groupsEl.setAttribute('aria-busy', 'false'));
      };
      prev.addEventListener('click', () => turn(-1));
      next.addEventListener('click', () => turn(1));
      groupsEl.append(h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev, h('span', {}, `Page ${pageIdx + 1}`), next));
    }

    /** watch streams changes to the user's mail and places each; it reconnects after an error, resuming at its cursor. */
    function watch(): void {
      if (stopped) return;
      stream = api.stream<{ message?: Message; cursor?: string; heartbeat?: boolean }>(
        '/v1/users/me/messages:watch',
        (ev) => {
          if (ev.cursor) cursor = ev.cursor;
          if (ev.heartbeat || !ev.message) return;
          const isNew = !rows.has(ev.message.name);
          place(ev.message);
          scheduleStats();
          if (isNew && rows.has(ev.message.name)) live.textContent = `New: ${ev.message.subject || '(no subject)'}`;
        },
        { cursor: cursor || undefined },
      );
      stream.done.then(
        () => {
          if (!stopped) retryTimer = window.setTimeout(watch, 1000);
        },
        () => {
          if (!stopped) retryTimer = window.setTimeout(watch, 3000);
        },
      );
    }

    void load().then(watch);

    return () => {
      stopped = true;
      clearTimeout(statsTimer);
      clearTimeout(retryTimer);
      stream?.abort();
    };
  },
};

/** sourceText says which tier decided and with what. */
function sourceText(c: { source?: string; rule?: string; model?: string }): string {
  const s = shortEnum(c.source, 'CLASSIFICATION_SOURCE_');
  const label: Record<string, string> = { rules: 'header rules', llm: 'language model', cache: 'cache', learned: 'learned sender', user: 'your correction' };
  let out = label[s] ?? (s || 'unknown');
  if (c.rule) out += ` (${c.rule})`;
  else if (c.model) out += ` (${c.model})`;
  return out;
}
