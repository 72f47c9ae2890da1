// The web console as a user sees it, in Debian's chromium (run by
// test/e2e/console_test.go, TestConsoleUser, which starts the suite, imports
// mail and passes what it made through the environment):
//
//   MAILROOM_URL             the gateway, http://127.0.0.1:port
//   MAILROOM_API_KEY         the user's API key
//   MAILROOM_IMPORT_MAILBOX  an IMPORT mailbox of the user, for mail that arrives during the test
//   MAILROOM_GMAIL_MESSAGES  how many messages the fake Gmail account holds
//   MAILROOM_SCREENSHOTS     where the screenshots go
//   MAILROOM_IMAP_HOST, _PORT, _USER, _PASSWORD  an IMAP server (plain text) with 2 mails
import { check, checkAccessible, checkFits, env, launch, rest, shooter, signIn, step } from './lib.mjs';

const base = env('MAILROOM_URL');
const key = env('MAILROOM_API_KEY');
const importMailbox = env('MAILROOM_IMPORT_MAILBOX');
const gmailMessages = Number(env('MAILROOM_GMAIL_MESSAGES'));
const shoot = shooter(env('MAILROOM_SCREENSHOTS'));
const imap = { host: env('MAILROOM_IMAP_HOST'), port: env('MAILROOM_IMAP_PORT'), user: env('MAILROOM_IMAP_USER'), password: env('MAILROOM_IMAP_PASSWORD') };
const api = rest(base, key);

const { browser, context, page, errors } = await launch();
/** loaded waits until the mail page has drawn what its filters select. */
const loaded = () => page.locator('.groups[aria-busy="false"]').waitFor();
try {
  step('sign in');
  const resp = await signIn(page, base, key);
  const csp = resp.headers()['content-security-policy'] ?? '';
  check(csp.includes("script-src 'self'") && csp.includes("frame-ancestors 'none'"), 'CSP of /console/: ' + csp);

  // Neither the key nor the token is stored anywhere a script of another page could read.
  const stored = await page.evaluate(() => JSON.stringify({ l: { ...localStorage }, s: { ...sessionStorage }, c: document.cookie }));
  check(!stored.includes(key) && stored === '{"l":{},"s":{},"c":""}', 'storage after sign-in: ' + stored);
  check(!(await page.content()).includes(key), 'the API key is in the DOM');

  step('mail grouped by category');
  await page.locator('section.group').nth(1).waitFor();
  const groups = await page.locator('section.group').evaluateAll((els) =>
    els.map((s) => ({ group: s.dataset.group, count: Number(s.querySelector('h2 .count').textContent), rows: s.querySelectorAll('li.message').length })),
  );
  step('groups: ' + groups.map((g) => `${g.group}=${g.count}`).join(' '));
  check(groups.length >= 3, 'fewer than 3 category groups');
  for (const g of groups) check(g.rows >= 1 && g.count >= g.rows, `group ${g.group}: ${g.rows} rows, count ${g.count}`);
  const chips = await page.locator('nav.cats button.chip').count();
  check(chips === groups.length, `${chips} category chips for ${groups.length} groups`);
  await checkAccessible(page, 'mail');
  await shoot(page, 'mail');

  step('filter by category');
  const first = groups[0];
  await page.locator(`nav.cats button.chip[data-category="${first.group}"]`).click();
  await page.locator('nav.pager').waitFor();
  const filtered = await page.locator('li.message').count();
  check(filtered === first.count, `filtered to ${first.group}: ${filtered} rows, want ${first.count}`);
  check(page.url().includes('category=' + encodeURIComponent(first.group)), 'the filter is not in the URL: ' + page.url());
  await page.getByRole('button', { name: 'Clear filters' }).click();
  await page.locator('section.group').nth(1).waitFor();

  step('open a message and correct its category');
  const from = groups.find((g) => g.count >= 1);
  const to = groups.find((g) => g.group !== from.group && g.group !== '(unclassified)');
  const row = page.locator(`section.group[data-group="${from.group}"] li.message`).first();
  const name = await row.getAttribute('data-name');
  await row.locator('button.msg').click();
  const details = row.locator('.details');
  await details.locator('.source').waitFor();
  const source = await details.locator('.source').textContent();
  const reason = (await details.locator('.reason').count()) ? await details.locator('.reason').textContent() : '';
  step(`"${name}" in ${from.group}: decided by ${source}; reason: ${reason}`);
  check(source.length > 0, 'no classification source shown');
  await shoot(page, 'message');
  // The README's picture: the top of the page, a message open.
  await page.evaluate(() => window.scrollTo(0, 0));
  await shoot(page, 'console', { fullPage: false, clip: { x: 0, y: 0, width: 1280, height: 860 } });
  await details.getByRole('button', { name: to.group, exact: true }).click();
  const moved = page.locator(`section.group[data-group="${to.group}"] li.message[data-name="${name}"]`);
  await moved.waitFor();
  check((await page.locator(`section.group[data-group="${from.group}"] li.message[data-name="${name}"]`).count()) === 0, 'the message is still in its old group');
  await page.waitForFunction(
    ([g, n]) => Number(document.querySelector(`section.group[data-group="${g}"] h2 .count`)?.textContent) === n,
    [to.group, to.count + 1],
  );
  check((await moved.locator('.details .source').textContent()).includes('your correction'), 'the moved message does not say it was corrected');
  const stored2 = await api('GET', '/v1/' + name);
  check(stored2.classification?.category === to.group && stored2.classification?.source === 'CLASSIFICATION_SOURCE_USER', 'the API has ' + JSON.stringify(stored2.classification));
  step(`moved to ${to.group}; the API agrees`);

  step('new mail appears without a reload');
  await page.evaluate(() => {
    window.__sameDocument = true;
  });
  const subject = 'Console live mail ' + Date.now();
  const raw = [
    'From: Billing <billing@utility.example>',
    'To: Ada Lovelace <ada@example.com>',
    'Subject: ' + subject,
    'Date: ' + new Date().toUTCString().replace('GMT', '+0000'),
    `Message-ID: <live-${Date.now()}@example.org>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Your invoice is ready; the payment is due next week.',
    '',
  ].join('\r\n');
  await api('POST', '/v1/' + importMailbox + '/messages:import', { messages: [{ raw: Buffer.from(raw).toString('base64') }] });
  await page.getByText(subject).first().waitFor({ timeout: 30_000 });
  check(await page.evaluate(() => window.__sameDocument === true), 'the page was reloaded');
  // Once classified it sits in its category's group.
  await page.locator('section.group:not([data-group="(unclassified)"]) li.message', { hasText: subject }).waitFor({ timeout: 30_000 });
  await shoot(page, 'mail-new');

  step('connect Gmail through the consent flow');
  await page.getByRole('link', { name: 'Mailboxes' }).click();
  const gmailForm = page.locator('form', { has: page.getByRole('heading', { name: 'Connect Gmail' }) });
  await gmailForm.getByLabel('Name (optional)').fill('Personal Gmail');
  await gmailForm.getByRole('button', { name: 'Connect Gmail' }).click();
  const grant = page.getByRole('link', { name: 'Grant access in Google' });
  const [consent] = await Promise.all([context.waitForEvent('page'), grant.click()]);
  await consent.waitForLoadState();
  const consentText = await consent.locator('body').textContent();
  check(consentText.includes('Gmail connected'), 'the consent tab says: ' + consentText.slice(0, 200));
  await shoot(consent, 'gmail-consent');
  await consent.close();
  const box = page.locator('li.mailbox', { hasText: 'Personal Gmail' });
  await box.locator('[data-state="MAILBOX_STATE_ACTIVE"], button.sync').first().waitFor({ timeout: 30_000 });
  await checkAccessible(page, 'mailboxes');

  step('sync it and watch the progress');
  await box.getByRole('button', { name: 'Sync now' }).click();
  const sync = page.locator('li.sync').first();
  await sync.waitFor();
  const seen = new Set();
  for (let i = 0; i < 600; i++) {
    const state = await sync.getAttribute('data-state');
    const text = (await sync.locator('label').allTextContents()).join(' / ') + ' / ' + (await sync.locator('.eta').textContent());
    if (!seen.has(text)) {
      seen.add(text);
      step('sync: ' + text);
      if (seen.size === 2) await shoot(page, 'sync-running');
    }
    if (state === 'done') break;
    await page.waitForTimeout(200);
  }
  check((await sync.getAttribute('data-state')) === 'done', 'the sync did not finish in 2 minutes');
  const labels = (await sync.locator('label').allTextContents()).join(' / ');
  check(labels === `Fetched ${gmailMessages} of ${gmailMessages} / Classified ${gmailMessages} of ${gmailMessages}`, 'the finished sync says ' + labels);
  check(seen.size >= 3, `the progress was seen in ${seen.size} states only`);
  check([...seen].some((t) => / of \d+ \/.* of \d+ \/ About .* left\./.test(t)), 'no estimate of the time left was shown');
  await shoot(page, 'mailboxes');

  step('connect IMAP and sync it');
  const imapForm = page.locator('form', { has: page.getByRole('heading', { name: 'Connect IMAP' }) });
  await imapForm.getByLabel('Server').fill(imap.host);
  await imapForm.getByLabel('Security').selectOption('IMAP_SECURITY_NONE');
  await imapForm.getByLabel('Port').fill(imap.port);
  await imapForm.getByLabel('User name').fill(imap.user);
  await imapForm.getByLabel('Password').fill(imap.password);
  await imapForm.getByLabel('Name (optional)').fill('Work IMAP');
  await imapForm.getByRole('button', { name: 'Connect IMAP' }).click();
  const imapBox = page.locator('li.mailbox', { hasText: 'Work IMAP' });
  await imapBox.getByRole('button', { name: 'Sync now' }).click();
  check((await imapForm.getByLabel('Password').inputValue()) === '', 'the IMAP password stays in the form');
  const imapSync = page.locator('li.sync', { hasText: 'Work IMAP' });
  await imapSync.and(page.locator('[data-state="done"]')).waitFor({ timeout: 60_000 });
  const imapLabels = (await imapSync.locator('label').allTextContents()).join(' / ');
  check(imapLabels === 'Fetched 2 of 2 / Classified 2 of 2', 'the IMAP sync says ' + imapLabels);
  check(!(await page.content()).includes(imap.password), 'the IMAP password is in the DOM');
  await shoot(page, 'mailboxes-imap');

  step('filters: mailbox, paging with page tokens, needs-reply, date');
  await page.getByRole('link', { name: 'Mail', exact: true }).click();
  await page.locator('section.group').first().waitFor();
  await page.getByLabel('Mailbox').selectOption({ label: 'Personal Gmail' });
  await loaded();
  const gmailSubjects = await page.locator('li.message .subject').allTextContents();
  check(gmailSubjects.length > 0 && !gmailSubjects.includes('Invoice 2291'), 'the mailbox filter lets through: ' + gmailSubjects.join(', '));
  const gmailName = new URLSearchParams(page.url().split('?')[1]).get('mailbox');
  // The largest category of the Gmail mail, two to a page.
  const counts = await page.locator('section.group').evaluateAll((els) => els.map((s) => [s.dataset.group, s.querySelectorAll('li.message').length]));
  const [bigCat, bigRows] = counts.sort((a, b) => b[1] - a[1])[0];
  check(bigRows >= 3, 'no category with 3 Gmail messages: ' + JSON.stringify(counts));
  await page.evaluate((hash) => {
    location.hash = hash;
  }, `#/mail?category=${encodeURIComponent(bigCat)}&mailbox=${encodeURIComponent(gmailName)}&pageSize=2`);
  await page.getByText('Page 1').waitFor();
  await loaded();
  const page1 = await page.locator('li.message').evaluateAll((els) => els.map((e) => e.dataset.name));
  check(page1.length === 2, 'page 1 has ' + page1.length + ' messages, want 2');
  await page.getByRole('button', { name: 'Older' }).click();
  await page.getByText('Page 2').waitFor();
  await loaded();
  const page2 = await page.locator('li.message').evaluateAll((els) => els.map((e) => e.dataset.name));
  check(page2.length >= 1 && page2.every((n) => !page1.includes(n)), `page 2 ${page2} repeats page 1 ${page1}`);
  const t1 = await page.locator('li.message time').first().getAttribute('datetime');
  await page.getByRole('button', { name: 'Newer' }).click();
  await page.getByText('Page 1').waitFor();
  await loaded();
  const again = await page.locator('li.message').evaluateAll((els) => els.map((e) => e.dataset.name));
  check(JSON.stringify(again) === JSON.stringify(page1), 'back to page 1 shows ' + again);
  check(Date.parse(await page.locator('li.message time').last().getAttribute('datetime')) >= Date.parse(t1), 'pages are not newest first');
  await page.getByRole('button', { name: 'Clear filters' }).click();
  await loaded();
  await page.getByLabel('Needs a reply').check();
  await loaded();
  check(page.url().includes('needsReply=true'), 'the needs-reply filter is not in the URL');
  const badges = await page.locator('li.message').evaluateAll((els) => els.map((e) => e.querySelector('.badge') !== null));
  check(badges.length > 0 && badges.every(Boolean), 'needs-reply filter: ' + JSON.stringify(badges));
  await page.getByRole('button', { name: 'Clear filters' }).click();
  await loaded();
  const tomorrow = new Date(Date.now() + 86_400_000);
  const ymd = `${tomorrow.getFullYear()}-${String(tomorrow.getMonth() + 1).padStart(2, '0')}-${String(tomorrow.getDate()).padStart(2, '0')}`;
  await page.getByLabel('From').fill(ymd);
  await loaded();
  await page.getByText('No messages match the filters.').waitFor();
  await page.getByRole('button', { name: 'Clear filters' }).click();
  await loaded();
  check((await page.locator('section.group').count()) >= 3, 'clearing the filters does not bring the groups back');

  step('taxonomy: add a category');
  await page.getByRole('link', { name: 'Taxonomy' }).click();
  await page.locator('tbody tr').first().waitFor();
  await page.getByRole('button', { name: 'Add a category' }).click();
  const last = page.locator('tbody tr').last();
  await last.getByLabel('Category name').fill('receipts');
  await last.locator('input[name=description]').fill('Receipts of things I bought');
  await page.getByRole('button', { name: 'Save taxonomy' }).click();
  await page.getByText('Taxonomy saved.').waitFor();
  const tax = await api('GET', '/v1/users/me/taxonomy');
  check(tax.categories.some((c) => c.name === 'receipts'), 'the API taxonomy lacks receipts: ' + JSON.stringify(tax.categories.map((c) => c.name)));
  await checkAccessible(page, 'taxonomy');
  await shoot(page, 'taxonomy');

  step('a phone’s width: 375 px');
  await page.setViewportSize({ width: 375, height: 812 });
  for (const [link, what] of [
    ['Mail', 'mail'],
    ['Mailboxes', 'mailboxes'],
    ['Taxonomy', 'taxonomy'],
  ]) {
    await page.getByRole('link', { name: link, exact: true }).click();
    await page.waitForTimeout(500);
    await checkFits(page, what + ' at 375 px');
    await shoot(page, what + '-375');
  }

  step('keyboard: the skip link comes first and moves focus to the content; a message opens with Enter');
  const firstFocusable = await page.evaluate(() => document.querySelector('a[href], button, input, select, textarea')?.className);
  check(firstFocusable === 'skip', 'the first focusable element is ' + firstFocusable);
  await page.locator('a.skip').focus();
  check(await page.locator('a.skip').evaluate((a) => a.getBoundingClientRect().left >= 0), 'the focused skip link is off screen');
  await page.keyboard.press('Enter');
  check(await page.evaluate(() => document.activeElement?.id === 'main'), 'the skip link does not focus the content');
  await page.getByRole('link', { name: 'Mail', exact: true }).click();
  const msgButton = page.locator('li.message button.msg').first();
  await msgButton.focus();
  await page.keyboard.press('Enter');
  check((await msgButton.getAttribute('aria-expanded')) === 'true', 'Enter does not open a message');

  step('sign out forgets the session; signing in again shows one page');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('API key').waitFor();
  check((await page.locator('#nav a').count()) === 0, 'the navigation stays after signing out');
  await checkAccessible(page, 'sign-in');
  await checkFits(page, 'sign-in at 375 px');
  await shoot(page, 'sign-in-375');
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('section.group').first().waitFor();
  await page.waitForTimeout(500);
  const shown = await page.locator('section.group').evaluateAll((els) => els.map((e) => e.dataset.group));
  check(new Set(shown).size === shown.length && (await page.locator('h1').count()) === 1, 'after signing in again: ' + shown);

  check(errors.length === 0, 'console errors: ' + errors.join(' | '));
  step('ok');
} catch (e) {
  await shoot(page, 'failure').catch(() => {});
  throw e;
} finally {
  await browser.close();
}
