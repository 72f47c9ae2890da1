import type { Api } from '../api';
import { announce, errorText, h } from '../dom';
import type { Route } from '../router';
import { num, type User } from '../user/types';
import { History } from './limiter';
import { dollars, fmtNum, userOf, type DeadLetter, type Limits, type ModelUsage, type Usage } from './types';

/** The seed's red flags: what an operator used to check by hand every day. */
export const creditFloorMicros = 5_000_000;
export const rateLimitedShare = 0.01;
/** backlogWindowMs is how far back "backlog growing" compares. */
const backlogWindowMs = 5 * 60_000;

export type Flag = { id: string; title: string; red: boolean | null; detail: string };

/** flags computes the red flags; red is null when there is not enough to tell. */
export function flags(l: Limits, hist: History, deadLetters: number, moreDeadLetters: boolean): Flag[] {
  const credit = num(l.budget?.creditRemainingMicros ?? '-1');
  const t = hist.totals();
  const share = t.requests ? t.rateLimited / t.requests : 0;
  // Growing: more waits now than a minute ago and than at the start of
  // the window (five minutes, or as much history as there is), so that a
  // backlog draining after a burst is not flagged.
  const now = num(l.backlog);
  const at = (msAgo: number) => {
    const cutoff = Date.now() - msAgo;
    return hist.snaps.find((s) => Date.parse(s.time) >= cutoff) ?? hist.snaps[0];
  };
  const before = at(backlogWindowMs);
  const minuteAgo = at(60_000);
  const then = before ? num(before.backlog) : NaN;
  const recent = minuteAgo ? num(minuteAgo.backlog) : NaN;
  const span = before ? Math.max(1, Math.round((Date.now() - Date.parse(before.time)) / 60_000)) : 0;
  return [
    {
      id: 'credit',
      title: 'Credit below $5',
      red: credit < 0 ? null : credit < creditFloorMicros,
      detail: credit < 0 ? 'No credit balance is configured (MAILROOM_CREDIT_USD).' : `${dollars(credit)} of credit left.`,
    },
    {
      id: 'rate-limited',
      title: '429s above 1% of requests over the last hour',
      red: t.requests ? share > rateLimitedShare : null,
      detail: t.requests ? `${fmtNum(t.rateLimited)} 429s of ${fmtNum(t.requests)} answers (${fmtNum(share * 100, 2)} %).` : 'No model requests in the last hour.',
    },
    {
      id: 'dead-letters',
      title: 'Dead letters waiting',
      red: deadLetters > 0,
      detail: deadLetters ? `${fmtNum(deadLetters)}${moreDeadLetters ? '+' : ''} waiting for a replay.` : 'None.',
    },
    {
      id: 'backlog',
      title: 'Backlog growing',
      red: before && hist.snaps.length > 1 ? now > 0 && now > then && now > recent : null,
      detail: before ? `${fmtNum(now)} waiting now, ${fmtNum(recent)} a minute ago, ${fmtNum(then)} about ${span} min ago.` : 'Not enough history yet.',
    },
  ];
}

/** spendRoute shows today's spend against the budget, the credit, usage per model and the red flags. */
export const spendRoute: Route = {
  title: 'Spend',
  admin: true,
  render(root: HTMLElement, api: Api): () => void {
    let stopped = false;
    let timer = 0;
    let usageTimer = 0;
    const hist = new History();
    const budget = h('div', { class: 'budget' });
    const flagList = h('ul', { class: 'flags', id: 'flags' });
    const models = h('tbody');
    const users = h('tbody');
    const usageNote = h('p', { class: 'hint' }, 'Loading…');
    root.append(
      h('h1', {}, 'Spend'),
      h('section', { class: 'card', 'aria-labelledby': 'flags-h' }, h('h2', { id: 'flags-h' }, 'Red flags'), flagList),
      h('section', { class: 'card', 'aria-labelledby': 'budget-h' }, h('h2', { id: 'budget-h' }, 'Today'), budget),
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'models-h' },
        h('h2', { id: 'models-h' }, 'Usage per model'),
        usageNote,
        h(
          'div',
          { class: 'scroll' },
          h(
            'table',
            { class: 'stack' },
            h('caption', { class: 'visually-hidden' }, 'Model usage of every user, all time'),
            h('thead', {}, h('tr', {}, ...['Model', 'Requests', 'Prompt tokens', 'Cached', 'Completion tokens', 'Cost'].map((c) => h('th', { scope: 'col' }, c)))),
            models,
          ),
        ),
        h('h3', {}, 'Per user'),
        h(
          'div',
          { class: 'scroll' },
          h(
            'table',
            { class: 'stack' },
            h('caption', { class: 'visually-hidden' }, 'Usage per user, all time'),
            h('thead', {}, h('tr', {}, ...['User', 'Classified', 'By the model', 'Requests', 'Cost'].map((c) => h('th', { scope: 'col' }, c)))),
            users,
          ),
        ),
      ),
    );

    function drawBudget(l: Limits): void {
      const b = l.budget ?? {};
      const spent = num(b.spentTodayMicros);
      const daily = num(b.dailyLimitMicros);
      const credit = num(b.creditRemainingMicros ?? '-1');
      const parts: HTMLElement[] = [];
      if (daily > 0) {
        const m = h('meter', { id: 'spent-meter', min: 0, max: daily, value: Math.min(spent, daily), low: daily * 0.8, high: daily * 0.95, optimum: 0, 'aria-label': 'Spent today of the daily budget' });
        parts.push(h('p', { class: 'big', id: 'spent' }, `${dollars(spent)} spent of ${dollars(daily)} today (${fmtNum((spent / daily) * 100, 1)} %)`), m);
      } else {
        parts.push(h('p', { class: 'big', id: 'spent' }, `${dollars(spent)} spent today`), h('p', { class: 'hint' }, 'No daily budget is set (MAILROOM_DAILY_BUDGET_USD).'));
      }
      parts.push(h('p', { id: 'credit' }, credit >= 0 ? `Credit remaining: ${dollars(credit)}` : 'Credit remaining: unknown (no balance configured)'));
      if (b.exhausted) parts.push(h('p', { class: 'error', role: 'alert' }, 'The budget is exhausted: mail waits (none is lost) and only the rules tier classifies.'));
      budget.replaceChildren(...parts);
    }

    async function poll(): Promise<void> {
      try {
        const [l, dl] = await Promise.all([
          api.get<Limits>('/v1/limits', { historySince: hist.since() }),
          api.get<{ deadLetters?: DeadLetter[]; nextPageToken?: string }>('/v1/users/-/deadLetters', { pageSize: 1000 }),
        ]);
        if (stopped) return;
        hist.add(l.history);
        drawBudget(l);
        flagList.replaceChildren(
          ...flags(l, hist, dl.deadLetters?.length ?? 0, !!dl.nextPageToken).map((f) =>
            h(
              'li',
              { class: 'flag ' + (f.red === null ? 'unknown' : f.red ? 'red' : 'ok'), 'data-flag': f.id, 'data-red': String(f.red) },
              h('span', { class: 'mark', 'aria-hidden': 'true' }, f.red === null ? '–' : f.red ? '⚑' : '✓'),
              h('div', {}, h('strong', {}, f.title + ': '), h('span', { class: 'verdict' }, f.red === null ? 'cannot tell' : f.red ? 'red flag' : 'fine')),
              h('span', { class: 'hint' }, f.detail),
            ),
          ),
        );
      } catch (e) {
        if (!stopped) announce('Could not read the spend: ' + errorText(e), 'error');
      }
      if (!stopped) timer = window.setTimeout(poll, 5000);
    }

    async function usage(): Promise<void> {
      try {
        const list = await api.get<{ users?: User[]; nextPageToken?: string }>('/v1/users', { pageSize: 200 });
        const all = list.users ?? [];
        const usages = await Promise.all(all.map((u) => api.get<Usage>(`/v1/${u.name}/usage`).catch(() => ({}) as Usage)));
        if (stopped) return;
        const byModel = new Map<string, ModelUsage>();
        const add = (a: string | undefined, b: string | undefined) => String(num(a) + num(b));
        for (const u of usages) {
          for (const m of u.models ?? []) {
            const t = byModel.get(m.model) ?? { model: m.model };
            byModel.set(m.model, {
              model: m.model,
              requests: add(t.requests, m.requests),
              promptTokens: add(t.promptTokens, m.promptTokens),
              cachedPromptTokens: add(t.cachedPromptTokens, m.cachedPromptTokens),
              completionTokens: add(t.completionTokens, m.completionTokens),
              costMicros: add(t.costMicros, m.costMicros),
            });
          }
        }
        const cell = (label: string, v: string) => h('td', { 'data-label': label }, v);
        models.replaceChildren(
          ...[...byModel.values()].map((m) =>
            h(
              'tr',
              { 'data-model': m.model },
              h('th', { scope: 'row' }, m.model),
              cell('Requests', fmtNum(num(m.requests))),
              cell('Prompt tokens', fmtNum(num(m.promptTokens))),
              cell('Cached', fmtNum(num(m.cachedPromptTokens))),
              cell('Completion tokens', fmtNum(num(m.completionTokens))),
              cell('Cost', dollars(num(m.costMicros))),
            ),
          ),
        );
        if (!byModel.size) models.append(h('tr', {}, h('td', { colspan: 6, class: 'empty' }, 'No model calls yet.')));
        users.replaceChildren(
          ...all.map((u, i) =>
            h(
              'tr',
              {},
              h('th', { scope: 'row' }, userOf(u.name)),
              cell('Classified', fmtNum(num(usages[i].classifications))),
              cell('By the model', fmtNum(num(usages[i].llmClassifications))),
              cell('Requests', fmtNum(num(usages[i].requests))),
              cell('Cost', dollars(num(usages[i].costMicros))),
            ),
          ),
        );
        usageNote.textContent = `All time, from the store's usage of ${all.length}${list.nextPageToken ? '+' : ''} users (dead-lettered attempts included). Refreshed ${new Date().toLocaleTimeString()}.`;
      } catch (e) {
        if (!stopped) usageNote.textContent = 'Could not read the usage: ' + errorText(e);
      }
      if (!stopped) usageTimer = window.setTimeout(usage, 30_000);
    }

    void poll();
    void usage();
    return () => {
      stopped = true;
      clearTimeout(timer);
      clearTimeout(usageTimer);
    };
  },
};
