import type { Api } from '../api';
import { announce, errorText, fmtTime, h, lastSegment } from '../dom';
import type { Route } from '../router';
import { num, shortEnum, type Mailbox } from './types';

/** mailboxesRoute lists the user's mailboxes, connects new ones and runs syncs. */
export const mailboxesRoute: Route = {
  title: 'Mailboxes',
  render(root: HTMLElement, api: Api): () => void {
    let stopped = false;
    const list = h('ul', { class: 'mailboxes' });
    root.append(h('h1', {}, 'Mailboxes'), h('section', { 'aria-labelledby': 'mb-h' }, h('h2', { id: 'mb-h' }, 'Your mailboxes'), list));

    function draw(mbs: Mailbox[]): void {
      list.replaceChildren(
        ...mbs.map((m) =>
          h(
            'li',
            { class: 'card mailbox', 'data-name': m.name },
            h('h3', {}, m.displayName || m.address || lastSegment(m.name)),
            h('p', {}, `${shortEnum(m.provider, 'PROVIDER_')} · ${shortEnum(m.state, 'MAILBOX_STATE_')} · ${num(m.messageCount)} messages`),
            m.lastSyncTime ? h('p', { class: 'muted' }, 'Last sync ' + fmtTime(m.lastSyncTime)) : null,
          ),
        ),
      );
      if (!mbs.length) list.append(h('li', { class: 'empty' }, 'No mailbox yet.'));
    }

    api
      .get<{ mailboxes?: Mailbox[] }>('/v1/users/me/mailboxes', { pageSize: 1000 })
      .then((r) => !stopped && draw(r.mailboxes ?? []))
      .catch((e) => announce('Could not load the mailboxes: ' + errorText(e), 'error'));
    return () => {
      stopped = true;
    };
  },
};
