import type { Api } from '../api';
import { announce, errorText, fmtTime, h, uid } from '../dom';
import type { Route } from '../router';
import type { Category, Taxonomy } from './types';

/** taxonomyRoute shows the user's categories and edits them (PATCH /v1/users/me/taxonomy). */
export const taxonomyRoute: Route = {
  title: 'Taxonomy',
  render(root: HTMLElement, api: Api): () => void {
    let stopped = false;
    const body = h('tbody');
    const when = h('p', { class: 'muted' });
    const add = h('button', { type: 'button', class: 'secondary' }, 'Add a category');
    const save = h('button', { type: 'submit' }, 'Save taxonomy');
    const form = h(
      'form',
      { class: 'taxonomy', 'aria-labelledby': 'tax-h' },
      h(
        'table',
        {},
        h('caption', { class: 'visually-hidden' }, 'Categories'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Description (tells the model what belongs here)'), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Remove')))),
        body,
      ),
      h('div', { class: 'actions' }, add, save),
    );
    root.append(
      h('h1', { id: 'tax-h' }, 'Taxonomy'),
      h('p', {}, 'The categories your mail is sorted into. “other” is always one of them. Changes apply to mail classified from now on.'),
      when,
      form,
    );

    function addRow(c: Category): void {
      const nameId = uid('cat');
      const name = h('input', { id: nameId, name: 'name', value: c.name, required: true, pattern: '[a-z0-9][a-z0-9\\-]*', maxlength: 40, 'aria-label': 'Category name' });
      const desc = h('input', { name: 'description', value: c.description ?? '', maxlength: 200, 'aria-label': `Description of ${c.name || 'the new category'}` });
      const rm = h('button', { type: 'button', class: 'link', 'aria-label': `Remove ${c.name || 'this category'}` }, 'Remove');
      const tr = h('tr', {}, h('td', {}, name), h('td', {}, desc), h('td', {}, rm));
      rm.addEventListener('click', () => tr.remove());
      if (c.name === 'other') {
        name.readOnly = true;
        rm.disabled = true;
      }
      body.append(tr);
    }

    function draw(t: Taxonomy): void {
      body.replaceChildren();
      for (const c of t.categories ?? []) addRow(c);
      when.textContent = t.updateTime ? `Last changed ${fmtTime(t.updateTime)}.` : 'This is the default taxonomy.';
    }

    add.addEventListener('click', () => {
      addRow({ name: '', description: '' });
      body.querySelector<HTMLInputElement>('tr:last-child input')?.focus();
    });

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const categories: Category[] = [...body.querySelectorAll('tr')].map((tr) => ({
        name: (tr.querySelector('input[name=name]') as HTMLInputElement).value.trim().toLowerCase(),
        description: (tr.querySelector('input[name=description]') as HTMLInputElement).value.trim(),
      }));
      save.disabled = true;
      try {
        const t = await api.patch<Taxonomy>('/v1/users/me/taxonomy', { categories }, { updateMask: 'categories' });
        draw(t);
        announce('Taxonomy saved.');
      } catch (e) {
        announce('Could not save the taxonomy: ' + errorText(e), 'error');
      } finally {
        save.disabled = false;
      }
    });

    api
      .get<Taxonomy>('/v1/users/me/taxonomy')
      .then((t) => !stopped && draw(t))
      .catch((e) => announce('Could not load the taxonomy: ' + errorText(e), 'error'));
    return () => {
      stopped = true;
    };
  },
};
