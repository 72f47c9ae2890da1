import type { Api } from '../api';
import { announce, errorText, fmtDuration, h } from '../dom';
import type { Route } from '../router';
import { num } from '../user/types';
import { TimeChart, type Series } from './chart';
import { fmtNum, laneName, type KeyLimits, type KeySample, type Limits, type LimitsSnapshot } from './types';

/** pollMs is how often the page asks for what is new. */
export const pollMs = 3000;
/** hourMs is how much history the charts show. */
const hourMs = 3600_000;

const color = {
  limit: '#0b57d0',
  used: '#a14b00',
  available: '#146c2e',
  inFlight: '#6b3fa0',
  limited: '#b3261e',
  frozen: '#4f5863',
  interactive: '#0b57d0',
  live: '#146c2e',
  backfill: '#a14b00',
  backlog: '#1b1f24',
};

/** History keeps the snapshots of the last hour, oldest first. */
export class History {
  snaps: LimitsSnapshot[] = [];

  /** add appends the snapshots newer than the last one held and drops those older than an hour. */
  add(more: LimitsSnapshot[] | undefined): void {
    const last = this.snaps.length ? Date.parse(this.snaps[this.snaps.length - 1].time) : -Infinity;
    for (const s of more ?? []) if (Date.parse(s.time) > last) this.snaps.push(s);
    const since = Date.now() - hourMs;
    while (this.snaps.length && Date.parse(this.snaps[0].time) < since) this.snaps.shift();
  }

  /** interval is the seconds between the last two snapshots (10 by default). */
  interval(): number {
    const n = this.snaps.length;
    return n < 2 ? 10 : (Date.parse(this.snaps[n - 1].time) - Date.parse(this.snaps[n - 2].time)) / 1000;
  }

  /** since is the time of the last snapshot held, for history_since. */
  since(): string {
    // The epoch asks for the whole last hour; without historySince the
    // answer holds no history.
    return this.snaps.length ? this.snaps[this.snaps.length - 1].time : '1970-01-01T00:00:00Z';
  }

  /** keys lists the key-and-model pairs of the history, in order of appearance. */
  keys(): string[] {
    const seen = new Set<string>();
    for (const s of this.snaps) for (const k of s.keys ?? []) seen.add(keyId(k));
    return [...seen];
  }

  /** series reads, per snapshot, the values pick returns for the key id. */
  series(id: string, pick: (k: KeySample) => number[]): Series {
    const xs: number[] = [];
    let ys: (number | null)[][] = [];
    for (const s of this.snaps) {
      const k = (s.keys ?? []).find((x) => keyId(x) === id);
      xs.push(Date.parse(s.time) / 1000);
      const vs = k ? pick(k) : null;
      if (!ys.length && vs) ys = vs.map(() => []);
      ys.forEach((y, i) => y.push(vs ? vs[i] : null));
    }
    return { xs, ys };
  }

  /** totals adds up the answers and 429s of a key (every key for no id) over the history. */
  totals(id?: string): { requests: number; rateLimited: number } {
    let requests = 0;
    let rateLimited = 0;
    for (const s of this.snaps) {
      for (const k of s.keys ?? []) {
        if (id && keyId(k) !== id) continue;
        requests += num(k.requests);
        rateLimited += num(k.rateLimited);
      }
    }
    return { requests, rateLimited };
  }
}

/** keyId names a key's pool for one model. */
export function keyId(k: { key: string; model?: string }): string {
  return k.key + ' · ' + (k.model || '(default model)');
}

/** KeyPanel is one key and model: its state now and its charts. */
class KeyPanel {
  readonly el: HTMLElement;
  private readonly facts: HTMLElement;
  private readonly charts: { chart: TimeChart; pick: (k: KeySample) => number[] }[];

  constructor(readonly id: string) {
    const hid = 'key-' + id.replace(/[^a-z0-9]+/gi, '-');
    this.facts = h('dl', { class: 'facts' });
    this.charts = [
      {
        chart: new TimeChart({ id: 'requests', title: 'Requests', unit: 'per minute', lines: [{ label: 'limit', color: color.limit, dash: true }, { label: 'used', color: color.used, digits: 1 }] }),
        pick: (k) => [k.requestsPerMinute ?? 0, k.requestsUsedPerMinute ?? 0],
      },
      {
        chart: new TimeChart({ id: 'tokens', title: 'Tokens', unit: 'per minute', lines: [{ label: 'limit', color: color.limit, dash: true }, { label: 'used', color: color.used }] }),
        pick: (k) => [k.tokensPerMinute ?? 0, k.tokensUsedPerMinute ?? 0],
      },
      {
        chart: new TimeChart({
          id: 'available',
          title: 'Available in the buckets',
          lines: [{ label: 'requests', color: color.available, digits: 1 }, { label: 'tokens', color: color.limit, dash: true, axis: 1 }],
          rightLabel: 'tokens',
        }),
        pick: (k) => [k.requestsAvailable ?? 0, k.tokensAvailable ?? 0],
      },
      {
        chart: new TimeChart({
          id: 'answers',
          title: 'In flight, 429s and freezes',
          unit: 'per snapshot interval',
          lines: [
            { label: 'in flight', color: color.inFlight },
            { label: '429s', color: color.limited },
            { label: 'frozen s', color: color.frozen, dash: true, digits: 1 },
          ],
        }),
        pick: (k) => [num(k.inFlight), num(k.rateLimited), k.frozenSeconds ?? 0],
      },
    ];
    this.el = h(
      'section',
      { class: 'card key', 'aria-labelledby': hid, 'data-key': id },
      h('h2', { id: hid }, id),
      this.facts,
      h('div', { class: 'charts' }, ...this.charts.map((c) => c.chart.el)),
    );
  }

  update(hist: History, now: KeyLimits | undefined): void {
    for (const c of this.charts) c.chart.set(hist.series(this.id, c.pick));
    const t = hist.totals(this.id);
    const last = hist.snaps.length ? (hist.snaps[hist.snaps.length - 1].keys ?? []).find((k) => keyId(k) === this.id) : undefined;
    const rows: [string, string, string?][] = [];
    if (now) {
      rows.push(
        ['Limit in force', `${fmtNum(now.requestsPerMinute ?? 0)} requests, ${fmtNum(now.tokensPerMinute ?? 0)} tokens a minute`, 'limit'],
        ['Source', `${now.limitSource ?? ''}${now.ceiling !== undefined && now.ceiling < 1 ? `, ceiling ${Math.round(now.ceiling * 100)} % after 429s` : ''}`],
        ['Available', `${fmtNum(now.requestsAvailable ?? 0, 1)} requests, ${fmtNum(now.tokensAvailable ?? 0)} tokens`, 'available'],
        ['In flight', fmtNum(num(now.inFlight)), 'in-flight'],
        ['Frozen', (now.frozenSeconds ?? 0) > 0 ? `for ${fmtDuration(now.frozenSeconds ?? 0)} more (a 429)` : 'no', 'frozen'],
      );
    }
    if (last) rows.push([`Used (last ${fmtDuration(hist.interval())})`, `${fmtNum(last.requestsUsedPerMinute ?? 0, 1)} requests, ${fmtNum(last.tokensUsedPerMinute ?? 0)} tokens a minute`, 'used']);
    rows.push(['429s', `${fmtNum(num(now?.rateLimitedLastMinute))} in the last minute; ${fmtNum(t.rateLimited)} of ${fmtNum(t.requests)} answers in the last hour`, 'rate-limited']);
    this.facts.replaceChildren(...rows.flatMap(([k, v, id]) => [h('dt', {}, k), h('dd', { 'data-fact': id }, v)]));
    const rl = this.facts.querySelector<HTMLElement>('[data-fact="rate-limited"]');
    if (rl) rl.dataset.count = String(t.rateLimited);
  }

  destroy(): void {
    for (const c of this.charts) c.chart.destroy();
  }
}

/** limiterRoute charts the limiter per key and model over the last hour, beside the lanes and the backlog. */
export const limiterRoute: Route = {
  title: 'Limiter',
  admin: true,
  render(root: HTMLElement, api: Api): () => void {
    let stopped = false;
    let timer = 0;
    const hist = new History();
    const panels = new Map<string, KeyPanel>();
    const meta = h('p', { class: 'muted', id: 'limiter-meta' }, 'Loading…');
    const lanesBody = h('tbody');
    const backlog = h('strong', { id: 'backlog', 'data-count': '0' }, '–');
    const batches = h('p', { id: 'batches', hidden: true });
    const queueChart = new TimeChart({
      id: 'queues',
      title: 'Mail waiting',
      lines: [
        { label: 'interactive', color: color.interactive },
        { label: 'live', color: color.live, dash: true },
        { label: 'backfill', color: color.backfill },
        { label: 'backlog', color: color.backlog, dash: true },
      ],
    });
    const keys = h('div', { class: 'keys' });
    const none = h('p', { class: 'empty', hidden: true }, 'No language model is configured: the rules tier runs alone, with no limiter.');
    root.append(
      h('h1', {}, 'Limiter'),
      meta,
      h(
        'section',
        { class: 'card queues', 'aria-labelledby': 'queues-h' },
        h('h2', { id: 'queues-h' }, 'Lanes and backlog'),
        h(
          'div',
          { class: 'queue-facts' },
          h(
            'table',
            { class: 'lanes' },
            h('caption', { class: 'visually-hidden' }, 'Mail waiting for the limiter, per lane'),
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Lane'), h('th', { scope: 'col' }, 'Waiting'), h('th', { scope: 'col' }, 'Oldest wait'))),
            lanesBody,
          ),
          h(
            'div',
            {},
            h('p', {}, 'Backlog in the work stream: ', backlog, h('span', { class: 'hint' }, 'mail not yet classified (pending and being worked on)')),
            batches,
          ),
        ),
        queueChart.el,
      ),
      none,
      keys,
    );

    function draw(l: Limits): void {
      hist.add(l.history);
      const replicas = l.replicas ?? 1;
      meta.textContent = `${l.model ? 'Model ' + l.model : 'Rules only'} · ${replicas} ${replicas === 1 ? 'replica' : 'replicas'} (this one’s share and history shown) · updated ${new Date().toLocaleTimeString()}`;
      lanesBody.replaceChildren(
        ...(l.lanes ?? []).map((q) =>
          h('tr', { 'data-lane': laneName(q.lane) }, h('th', { scope: 'row' }, laneName(q.lane)), h('td', {}, fmtNum(num(q.waiting))), h('td', {}, num(q.waiting) ? fmtDuration(q.oldestWaitSeconds ?? 0) : '–')),
        ),
      );
      backlog.textContent = fmtNum(num(l.backlog));
      backlog.dataset.count = String(num(l.backlog));
      const b = l.batches ?? {};
      // Backfill mail sent through OpenAI's Batch API passes the limiter by.
      batches.hidden = !num(b.batches) && !num(b.waiting);
      batches.textContent = `OpenAI batches (backfill at half price, outside the limiter): ${fmtNum(num(b.waiting))} mail waiting, ${fmtNum(num(b.batches))} batches made, ${fmtNum(num(b.answered))} mail answered.`;
      const xs = hist.snaps.map((s) => Date.parse(s.time) / 1000);
      const lane = (name: string) => hist.snaps.map((s) => num((s.lanes ?? []).find((q) => laneName(q.lane) === name)?.waiting));
      queueChart.set({ xs, ys: [lane('interactive'), lane('live'), lane('backfill'), hist.snaps.map((s) => num(s.backlog))] });

      const ids = new Set([...hist.keys(), ...(l.keys ?? []).map(keyId)]);
      none.hidden = ids.size > 0;
      for (const id of ids) {
        let p = panels.get(id);
        if (!p) {
          p = new KeyPanel(id);
          panels.set(id, p);
          keys.append(p.el);
        }
        p.update(
          hist,
          (l.keys ?? []).find((k) => keyId(k) === id),
        );
      }
    }

    async function poll(): Promise<void> {
      try {
        const l = await api.get<Limits>('/v1/limits', { historySince: hist.since() });
        if (stopped) return;
        draw(l);
      } catch (e) {
        if (!stopped) announce('Could not read the limiter: ' + errorText(e), 'error');
      }
      if (!stopped) timer = window.setTimeout(poll, pollMs);
    }
    void poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
      queueChart.destroy();
      for (const p of panels.values()) p.destroy();
    };
  },
};
