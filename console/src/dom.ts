/** Small DOM helpers shared by the pages: no framework, no innerHTML. */

type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;
export type Child = Node | string | number | null | undefined | false | Child[];

/**
 * h builds an element: attributes (booleans toggle, null/undefined/false
 * skip, `on*` functions become listeners) and children (text is text, never
 * HTML, so mail subjects cannot inject markup).
 */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === 'function') {
      el.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (v === true) {
      el.setAttribute(k, '');
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

/** append adds children to el. */
export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

let ids = 0;
/** uid returns an id unique in the page, for label/for and aria references. */
export function uid(prefix = 'f'): string {
  return `${prefix}-${++ids}`;
}

/** field is a labelled form control. */
export function field(label: string, control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement, hint?: string): HTMLElement {
  if (!control.id) control.id = uid();
  const parts: Child[] = [h('label', { for: control.id }, label), control];
  if (hint) {
    const hid = uid('hint');
    control.setAttribute('aria-describedby', hid);
    parts.push(h('small', { id: hid, class: 'hint' }, hint));
  }
  return h('div', { class: 'field' }, ...parts);
}

/** announce says msg in the page's live region (screen readers read it). */
let announceTimer = 0;
export function announce(msg: string, kind: 'info' | 'error' = 'info'): void {
  const s = document.getElementById('status');
  if (!s) return;
  s.textContent = msg;
  s.dataset.kind = kind;
  s.hidden = msg === '';
  // Notes fade after a while; errors stay until the next message.
  clearTimeout(announceTimer);
  if (msg && kind === 'info') announceTimer = window.setTimeout(() => announce(''), 6000);
}

/** errorText is what to show of an error. */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** fmtTime formats an RFC 3339 time for the reader's locale. */
export function fmtTime(t?: string): string {
  if (!t) return '';
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** fmtDuration formats seconds as "1 h 5 min", "3 min 20 s" or "12 s". */
export function fmtDuration(secs: number): string {
  if (!Number.isFinite(secs) || secs < 0) return '';
  secs = Math.round(secs);
  if (secs >= 3600) return `${Math.floor(secs / 3600)} h ${Math.round((secs % 3600) / 60)} min`;
  if (secs >= 60) return `${Math.floor(secs / 60)} min ${secs % 60} s`;
  return `${secs} s`;
}

/** lastSegment is the id at the end of a resource name. */
export function lastSegment(name: string): string {
  return name.slice(name.lastIndexOf('/') + 1);
}
