import type { Api, Stream } from '../api';
import { announce, errorText, field, fmtDuration, fmtTime, h, lastSegment } from '../dom';
import type { Route } from '../router';
import { num, shortEnum, type Mailbox, type SyncJob } from './types';

/** pollEvery is how often a mailbox waiting for consent, or a sync's classification, is looked at again. */
const pollEvery = 2000;
/** classifyWatch bounds how long a finished sync's classification is followed. */
const classifyWatch = 10 * 60_000;

/** SyncFigures is what the progress of a sync job says, for display. */
export type SyncFigures = {
  total: number; // messages the job will handle (listed, capped)
  fetched: number; // fetched, skipped or failed: done with fetching
  classified: number; // classified, or not to be (skipped, failed)
  ended: boolean;
  done: boolean; // ended, and everything published is classified
  etaSeconds: number; // NaN when unknown
};

/** figures reads a sync job's progress; elapsed is how long it has run, in seconds. */
export function figures(j: SyncJob, elapsed: number): SyncFigures {
  const p = j.progress ?? {};
  const listed = num(p.listed);
  const max = j.maxMessages ?? 0;
  const fetchedDone = num(p.fetched) + num(p.skipped) + num(p.failed);
  const total = Math.max(max > 0 && listed > max ? max : listed, fetchedDone);
  const classified = num(p.classified) + num(p.skipped) + num(p.failed);
  const ended = j.state === 'SYNC_JOB_STATE_SUCCEEDED' || j.state === 'SYNC_JOB_STATE_FAILED';
  const done = ended && (j.state === 'SYNC_JOB_STATE_FAILED' || classified >= fetchedDone);
  // Time left: the slower of fetching and classifying at their rates so far.
  let eta = NaN;
  if (!done && elapsed > 1 && total > 0) {
    const left: number[] = [];
    if (fetchedDone < total && fetchedDone > 0) left.push((total - fetchedDone) / (fetchedDone / elapsed));
    if (classified < total && classified > 0) left.push((total - classified) / (classified / elapsed));
    if (left.length) eta = Math.max(...left);
  }
  return { total, fetched: fetchedDone, classified: Math.min(classified, total || classified), ended, done, etaSeconds: eta };
}

/** mailboxesRoute lists the user's mailboxes, connects new ones (Gmail through Google's consent, IMAP) and runs syncs. */
export const mailboxesRoute: Route = {
  title: 'Mailboxes',
  render(root: HTMLElement, api: Api): () => void {
    let stopped = false;
    const timers = new Set<number>();
    const streams = new Set<Stream>();
    const watching = new Set<string>();
    const later = (f: () => void, ms: number) => {
      const id = window.setTimeout(() => {
        timers.delete(id);
        if (!stopped) f();
      }, ms);
      timers.add(id);
    };

    const list = h('ul', { class: 'mailboxes', 'aria-live': 'polite' });
    const syncs = h('ul', { class: 'syncs' });

    // Connect Gmail: create the mailbox, then the user grants access in a new tab.
    const gName = h('input', { name: 'gmail-name', placeholder: 'Work mail', maxlength: 100 });
    const gmailForm = h(
      'form',
      { class: 'card', 'aria-labelledby': 'gmail-h' },
      h('h3', { id: 'gmail-h' }, 'Connect Gmail'),
      h('p', { class: 'muted' }, 'Google asks you to allow mailroom to read your mail (read-only). The consent opens in a new tab; come back here afterwards.'),
      field('Name (optional)', gName),
      h('button', { type: 'submit' }, 'Connect Gmail'),
    );
    gmailForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        const mb = await api.post<Mailbox>('/v1/users/me/mailboxes', { provider: 'PROVIDER_GMAIL', displayName: gName.value.trim() });
        gName.value = '';
        // The API returns the consent's URL when the consent starts only.
        if (mb.authorizationUrl) consentURLs.set(mb.name, mb.authorizationUrl);
        announce('Mailbox created: grant access in Google, then sync it.');
        await refresh();
        list.querySelector<HTMLAnchorElement>(`li[data-name="${mb.name}"] a.authorize`)?.focus();
      } catch (e) {
        announce('Could not connect Gmail: ' + errorText(e), 'error');
      }
    });

    // Connect IMAP.
    const iHost = h('input', { name: 'imap-host', required: true, autocomplete: 'off', placeholder: 'imap.example.com' });
    const iPort = h('input', { name: 'imap-port', type: 'number', min: 1, max: 65535, value: 993, required: true });
    const iUser = h('input', { name: 'imap-user', required: true, autocomplete: 'username' });
    const iPass = h('input', { name: 'imap-password', type: 'password', required: true, autocomplete: 'current-password' });
    const iSec = h(
      'select',
      { name: 'imap-security' },
      h('option', { value: 'IMAP_SECURITY_TLS' }, 'TLS (port 993)'),
      h('option', { value: 'IMAP_SECURITY_STARTTLS' }, 'STARTTLS (port 143)'),
      h('option', { value: 'IMAP_SECURITY_NONE' }, 'None (tests only)'),
    );
    const iFolders = h('input', { name: 'imap-folders', placeholder: 'INBOX' });
    const iName = h('input', { name: 'imap-name', maxlength: 100 });
    const imapForm = h(
      'form',
      { class: 'card', 'aria-labelledby': 'imap-h' },
      h('h3', { id: 'imap-h' }, 'Connect IMAP'),
      field('Server', iHost),
      field('Port', iPort),
      field('Security', iSec),
      field('User name', iUser),
      field('Password', iPass, 'Stored encrypted in mailroom’s vault; never shown again.'),
      field('Folders', iFolders, 'Comma-separated; empty is INBOX.'),
      field('Name (optional)', iName),
      h('button', { type: 'submit' }, 'Connect IMAP'),
    );
    iSec.addEventListener('change', () => {
      iPort.value = iSec.value === 'IMAP_SECURITY_TLS' ? '993' : '143';
    });
    imapForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const password = iPass.value;
      iPass.value = '';
      try {
        await api.post<Mailbox>('/v1/users/me/mailboxes', {
          provider: 'PROVIDER_IMAP',
          displayName: iName.value.trim(),
          address: iUser.value.trim(),
          imap: {
            host: iHost.value.trim(),
            port: Number(iPort.value),
            username: iUser.value.trim(),
            password,
            security: iSec.value,
            folders: iFolders.value.split(',').map((s) => s.trim()).filter(Boolean),
          },
        });
        imapForm.reset();
        announce('IMAP mailbox connected.');
        await refresh();
      } catch (e) {
        announce('Could not connect IMAP: ' + errorText(e), 'error');
      }
    });

    root.append(
      h('h1', {}, 'Mailboxes'),
      h('section', { 'aria-labelledby': 'mb-h' }, h('h2', { id: 'mb-h' }, 'Your mailboxes'), list),
      h('section', { 'aria-labelledby': 'sync-h' }, h('h2', { id: 'sync-h' }, 'Syncs'), syncs),
      h('section', { 'aria-labelledby': 'add-h' }, h('h2', { id: 'add-h' }, 'Connect a mailbox'), h('div', { class: 'forms' }, gmailForm, imapForm)),
    );

    let mailboxes: Mailbox[] = [];
    /** consentURLs keeps the authorization URLs of the consents started on this page. */
    const consentURLs = new Map<string, string>();
    let pollTimer = 0;
    const label = (name?: string) => {
      const m = mailboxes.find((b) => b.name === name);
      return m ? m.displayName || m.address || lastSegment(m.name) : lastSegment(name ?? '');
    };

    function drawMailboxes(): void {
      list.replaceChildren(
        ...mailboxes.map((m) => {
          const actions = h('div', { class: 'actions' });
          const state = shortEnum(m.state, 'MAILBOX_STATE_');
          const consent = m.authorizationUrl || consentURLs.get(m.name);
          if (m.state === 'MAILBOX_STATE_PENDING_AUTHORIZATION' && consent) {
            actions.append(h('a', { class: 'button authorize', href: consent, target: '_blank', rel: 'noopener noreferrer' }, 'Grant access in Google'));
          }
          if (m.state === 'MAILBOX_STATE_DISCONNECTED' || (m.provider === 'PROVIDER_GMAIL' && m.state === 'MAILBOX_STATE_PENDING_AUTHORIZATION' && !consent)) {
            actions.append(h('button', { type: 'button', class: 'secondary', onclick: () => void reconnect(m) }, 'Reconnect'));
          }
          if (m.state === 'MAILBOX_STATE_ACTIVE' && m.provider !== 'PROVIDER_IMPORT') {
            actions.append(h('button', { type: 'button', class: 'sync', onclick: () => void sync(m) }, 'Sync now'));
          }
          return h(
            'li',
            { class: 'card mailbox', 'data-name': m.name, 'data-state': m.state ?? '' },
            h('h3', {}, label(m.name)),
            h('p', {}, `${shortEnum(m.provider, 'PROVIDER_')} · `, h('span', { class: 'state' }, state), ` · ${num(m.messageCount)} messages`),
            m.address ? h('p', { class: 'muted' }, m.address) : null,
            m.stateReason ? h('p', { class: 'muted' }, m.stateReason) : null,
            m.lastSyncTime ? h('p', { class: 'muted' }, 'Last sync ' + fmtTime(m.lastSyncTime)) : null,
            actions,
          );
        }),
      );
      if (!mailboxes.length) list.append(h('li', { class: 'empty' }, 'No mailbox yet: connect one below.'));
    }

    async function refresh(): Promise<void> {
      const r = await api.get<{ mailboxes?: Mailbox[] }>('/v1/users/me/mailboxes', { pageSize: 1000 });
      if (stopped) return;
      mailboxes = r.mailboxes ?? [];
      drawMailboxes();
      // A mailbox waiting for consent turns active once the user granted it in the other tab.
      clearTimeout(pollTimer);
      if (mailboxes.some((m) => m.state === 'MAILBOX_STATE_PENDING_AUTHORIZATION')) {
        pollTimer = window.setTimeout(() => void refresh().catch(() => {}), pollEvery);
        timers.add(pollTimer);
      }
    }

    async function reconnect(m: Mailbox): Promise<void> {
      try {
        const r = await api.post<{ mailbox?: Mailbox }>('/v1/' + m.name + ':reconnect', {});
        if (r.mailbox?.authorizationUrl) consentURLs.set(m.name, r.mailbox.authorizationUrl);
        await refresh();
      } catch (e) {
        announce('Could not reconnect: ' + errorText(e), 'error');
      }
    }

    async function sync(m: Mailbox): Promise<void> {
      try {
        const job = await api.post<SyncJob>('/v1/' + m.name + ':sync', {});
        announce(`Sync of ${label(m.name)} started.`);
        follow(job);
      } catch (e) {
        announce('Could not start the sync: ' + errorText(e), 'error');
      }
    }

    /** syncItem returns (creating it) the list item that shows job. */
    function syncItem(name: string): HTMLLIElement {
      let li = syncs.querySelector<HTMLLIElement>(`li[data-name="${name}"]`);
      if (!li) {
        syncs.querySelector('li.empty')?.remove();
        li = h('li', { class: 'card sync', 'data-name': name });
        syncs.prepend(li);
      }
      return li;
    }

    function drawJob(j: SyncJob): void {
      const li = syncItem(j.name);
      const started = j.createTime ? Date.parse(j.createTime) : Date.now();
      const end = j.endTime ? Date.parse(j.endTime) : Date.now();
      const f = figures(j, (Math.max(end, Date.now()) - started) / 1000);
      // A job ends when it has fetched everything; its mail is classified after.
      const state = f.done ? (j.state === 'SYNC_JOB_STATE_FAILED' ? 'failed' : 'finished') : f.ended ? 'classifying' : shortEnum(j.state, 'SYNC_JOB_STATE_');
      li.dataset.state = f.done ? 'done' : (j.state ?? '');
      const pct = (n: number) => (f.total > 0 ? Math.round((100 * n) / f.total) : 0);
      li.replaceChildren(
        h('h3', {}, `${label(j.mailbox)} — `, h('span', { class: 'state state-' + (f.done ? (j.state === 'SYNC_JOB_STATE_FAILED' ? 'failed' : 'succeeded') : 'running') }, state)),
        h('p', { class: 'muted' }, `Started ${fmtTime(j.createTime)}` + (j.endTime ? ` · fetching ended ${fmtTime(j.endTime)}` : '')),
        h('label', { for: j.name + '-f' }, `Fetched ${f.fetched} of ${f.total || '…'}`),
        h('progress', { id: j.name + '-f', max: Math.max(f.total, 1), value: f.fetched }, `${pct(f.fetched)} %`),
        h('label', { for: j.name + '-c' }, `Classified ${f.classified} of ${f.total || '…'}`),
        h('progress', { id: j.name + '-c', max: Math.max(f.total, 1), value: f.classified }, `${pct(f.classified)} %`),
        h(
          'p',
          { class: 'eta' },
          f.done
            ? `Done: ${num(j.progress?.fetched)} fetched, ${num(j.progress?.skipped)} already known, ${num(j.progress?.failed)} failed.`
            : Number.isFinite(f.etaSeconds)
              ? `About ${fmtDuration(f.etaSeconds)} left.`
              : 'Estimating the time left…',
        ),
        j.error ? h('p', { class: 'error' }, j.error) : '',
      );
    }

    /** follow streams job's progress until it ends, then polls its classification until done. */
    function follow(job: SyncJob): void {
      if (watching.has(job.name)) return;
      watching.add(job.name);
      drawJob(job);
      let last = job;
      const s = api.stream<{ syncJob?: SyncJob }>('/v1/' + job.name + ':watch', (r) => {
        if (r.syncJob) {
          last = r.syncJob;
          drawJob(last);
        }
      });
      streams.add(s);
      const since = Date.now();
      const poll = async (): Promise<void> => {
        try {
          last = await api.get<SyncJob>('/v1/' + job.name);
          drawJob(last);
        } catch {
          // try again at the next tick
        }
        if (!figures(last, 0).done && Date.now() - since < classifyWatch) later(() => void poll(), pollEvery);
        else void refresh().catch(() => {});
      };
      s.done
        .catch((e: unknown) => {
          if (!stopped) announce('Lost the sync’s progress stream: ' + errorText(e) + '; following it by polling.', 'error');
        })
        .finally(() => {
          streams.delete(s);
          if (!stopped) void poll();
        });
    }

    refresh()
      .then(() => api.get<{ syncJobs?: SyncJob[] }>('/v1/users/me/syncJobs', { pageSize: 5 }))
      .then((r) => {
        if (stopped) return;
        for (const j of (r.syncJobs ?? []).slice().reverse()) {
          if (figures(j, 0).done) drawJob(j);
          else follow(j);
        }
        if (!syncs.children.length) syncs.append(h('li', { class: 'empty' }, 'No sync yet.'));
      })
      .catch((e) => announce('Could not load the mailboxes: ' + errorText(e), 'error'));

    return () => {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      for (const s of streams) s.abort();
    };
  },
};
