import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { h } from '../dom';

/** Line is one series of a chart. */
export type Line = {
  label: string;
  color: string;
  /** dash draws the line dashed (limits), so that colour is not the only cue. */
  dash?: boolean;
  /** axis 1 puts the series on the right-hand scale. */
  axis?: 0 | 1;
  /** digits of the legend's and the summary's values. */
  digits?: number;
};

/** ChartSpec describes one time chart. */
export type ChartSpec = {
  /** id names the chart for tests (data-chart). */
  id: string;
  title: string;
  /** unit is said after the values in the summary ("per minute"). */
  unit?: string;
  lines: Line[];
  /** rightLabel names the right-hand axis when a line uses it. */
  rightLabel?: string;
};

/** Series are the x values (unix seconds) and one array of values per line. */
export type Series = { xs: number[]; ys: (number | null)[][] };

/**
 * TimeChart is a uPlot line chart in a <figure>: its caption names it and a
 * visually hidden summary says the latest values in words, for screen
 * readers and for tests (data-points counts the points plotted). It follows
 * its container's width.
 */
export class TimeChart {
  readonly el: HTMLElement;
  private plot: uPlot | null = null;
  private readonly box: HTMLElement;
  private readonly summary: HTMLElement;
  private readonly ro: ResizeObserver;
  private data: uPlot.AlignedData;

  constructor(private readonly spec: ChartSpec) {
    this.box = h('div', { class: 'plot', 'aria-hidden': 'true' });
    this.summary = h('p', { class: 'visually-hidden' });
    const cap = h('figcaption', {}, spec.title + (spec.unit ? ` (${spec.unit})` : ''));
    this.el = h('figure', { class: 'chart', 'data-chart': spec.id, 'data-points': '0' }, cap, this.box, this.summary);
    this.data = [[], ...spec.lines.map(() => [])] as uPlot.AlignedData;
    this.ro = new ResizeObserver(() => this.resize());
    this.ro.observe(this.box);
  }

  private width(): number {
    return Math.max(200, Math.floor(this.box.clientWidth || 320));
  }

  private height(): number {
    return window.matchMedia('(max-width: 40rem)').matches ? 150 : 180;
  }

  private make(): void {
    const right = this.spec.lines.some((l) => l.axis === 1);
    const opts: uPlot.Options = {
      width: this.width(),
      height: this.height(),
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, niceMax(max)] }, r: { range: (_u, _min, max) => [0, niceMax(max)] } },
      series: [
        {},
        ...this.spec.lines.map((l) => ({
          label: l.label,
          stroke: l.color,
          width: 2,
          dash: l.dash ? [6, 4] : undefined,
          scale: l.axis === 1 ? 'r' : 'y',
          points: { show: false },
          value: (_u: uPlot, v: number | null) => (v == null ? '–' : fmt(v, l.digits ?? 0)),
        })),
      ],
      axes: [
        { stroke: '#4f5863', grid: { stroke: '#e3e7ee' } },
        { stroke: '#4f5863', grid: { stroke: '#e3e7ee' }, size: 56, values: (_u, vs) => vs.map((v) => compact(v)) },
        ...(right ? [{ side: 1, scale: 'r', stroke: '#4f5863', grid: { show: false }, size: 56, label: this.spec.rightLabel, values: (_u: uPlot, vs: number[]) => vs.map((v) => compact(v)) }] : []),
      ],
    };
    this.plot = new uPlot(opts, this.data, this.box);
  }

  private resize(): void {
    if (!this.plot) return;
    const w = this.width();
    if (w !== this.plot.width) this.plot.setSize({ width: w, height: this.height() });
  }

  /** set replaces the chart's data. */
  set(s: Series): void {
    this.data = [s.xs, ...s.ys] as uPlot.AlignedData;
    if (!this.plot) {
      if (!this.el.isConnected) {
        // uPlot measures its container: draw once the figure is in the page.
        requestAnimationFrame(() => this.set(s));
        return;
      }
      this.make();
    } else {
      this.plot.setData(this.data);
    }
    this.el.dataset.points = String(s.xs.length);
    // The largest and the latest value of each line, for tests and tools.
    this.el.dataset.max = JSON.stringify(s.ys.map((y) => y.reduce<number>((m, v) => (v != null && v > m ? v : m), 0)));
    const last = s.xs.length - 1;
    const parts = this.spec.lines.map((l, i) => {
      const v = last >= 0 ? s.ys[i][last] : null;
      return `${l.label} ${v == null ? 'none' : fmt(v, l.digits ?? 0)}`;
    });
    this.summary.textContent = last >= 0 ? `Latest of ${s.xs.length} points: ${parts.join(', ')}${this.spec.unit ? ' ' + this.spec.unit : ''}.` : 'No data yet.';
  }

  destroy(): void {
    this.ro.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }
}

function fmt(v: number, digits: number): string {
  return v.toLocaleString(undefined, { maximumFractionDigits: digits });
}

/** compact writes axis values short: 1.2k, 3M. */
function compact(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return +(v / 1e6).toFixed(1) + 'M';
  if (a >= 1e3) return +(v / 1e3).toFixed(1) + 'k';
  return +v.toFixed(2) + '';
}

/** niceMax is a y range's top: a little over max, and 1 for an all-zero chart. */
function niceMax(max: number | null): number {
  if (max == null || !Number.isFinite(max) || max <= 0) return 1;
  return max * 1.1;
}
