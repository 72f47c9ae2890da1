// The web console as an admin sees it, in Debian's chromium (run by
// test/e2e/console_admin_test.go, TestConsoleAdmin, which starts the suite
// with the fake OpenAI answering some 429s, dead-letters one mail, starts a
// backfill and passes what it made through the environment):
//
//   MAILROOM_URL          the gateway, http://127.0.0.1:port
//   MAILROOM_ADMIN_KEY    the bootstrap admin key of the suite
//   MAILROOM_USERS        the users with a sync job, comma-separated (ada,bob)
//   MAILROOM_DEAD_LETTER  the message of the dead letter to replay
//   MAILROOM_SCREENSHOTS  where the screenshots go
import { check, checkAccessible, checkFits, env, launch, rest, shooter, signIn, step } from './lib.mjs';

const base = env('MAILROOM_URL');
const key = env('MAILROOM_ADMIN_KEY');
const users = env('MAILROOM_USERS').split(',');
const deadMessage = env('MAILROOM_DEAD_LETTER');
const shoot = shooter(env('MAILROOM_SCREENSHOTS'));
const api = rest(base, key);

/** chart reads a chart's points and the largest value of each line. */
async function chart(page, id) {
  const fig = page.locator(`section.key figure[data-chart="${id}"]`).first();
  return { points: Number(await fig.getAttribute('data-points')), max: JSON.parse((await fig.getAttribute('data-max')) ?? '[]') };
}

async function rateLimited(page) {
  return Number(await page.locator('section.key [data-fact="rate-limited"]').first().getAttribute('data-count'));
}

/** link is the console's navigation link to an admin page (its name may carry the admin mark). */
const link = (page, name) => page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: new RegExp(`(^|\\s)${name}$`) });

const { browser, page, errors } = await launch();
page.on('dialog', (d) => d.accept());
try {
  step('sign in as the admin');
  await signIn(page, base, key);
  for (const name of ['Limiter', 'Spend', 'Syncs', 'Dead letters', 'Users and keys']) {
    check((await link(page, name).count()) === 1, `no ${name} link for an admin`);
  }

  step('the limiter during the backfill');
  await link(page, 'Limiter').click();
  await page.locator('section.key figure[data-chart="requests"][data-points]').first().waitFor();
  await page.waitForFunction(() => Number(document.querySelector('section.key figure[data-chart="requests"]')?.dataset.points) > 0);
  const heading = await page.locator('section.key h2').first().textContent();
  const before = await chart(page, 'requests');
  const limitedBefore = await rateLimited(page);
  step(`${heading}: ${before.points} points, max limit ${before.max[0]}/min, max used ${before.max[1]}/min, ${limitedBefore} 429s`);
  check(heading.includes('gpt-4o-mini'), 'the key section does not name the model: ' + heading);
  // The history grows every second (MAILROOM_LIMITS_HISTORY_INTERVAL=1s)
  // and the page asks for it every 3 s: the chart gains points while the
  // backfill goes, mail is sent (used above 0) and a 429 is counted.
  await page.waitForFunction(
    (p) => {
      const fig = document.querySelector('section.key figure[data-chart="requests"]');
      const rl = document.querySelector('section.key [data-fact="rate-limited"]');
      const max = JSON.parse(fig?.dataset.max ?? '[0,0]');
      return Number(fig?.dataset.points) >= p + 3 && max[1] > 0 && Number(rl?.dataset.count) >= 1;
    },
    before.points,
    { timeout: 90_000 },
  );
  const after = await chart(page, 'requests');
  const tokens = await chart(page, 'tokens');
  const limitedAfter = await rateLimited(page);
  const backlog = await page.locator('#backlog').getAttribute('data-count');
  const lanes = await page.locator('table.lanes tbody tr').evaluateAll((rows) => rows.map((r) => r.textContent.trim().replace(/\s+/g, ' ')));
  step(`after: ${after.points} points, max used ${after.max[1]} requests and ${tokens.max[1]} tokens a minute, ${limitedAfter} 429s, backlog ${backlog}, lanes ${lanes.join(' | ')}`);
  check(after.points > before.points, `the chart did not move: ${before.points} → ${after.points} points`);
  check(after.max[1] > 0 && tokens.max[1] > 0, 'no use plotted');
  check(limitedAfter >= 1, 'no 429 counted');
  check(lanes.length === 3, 'the lanes table has ' + lanes.length + ' rows');
  check((await page.locator('section.key figure.chart').count()) === 4, 'a key has not four charts');
  check((await page.locator('section.key .u-legend').count()) >= 4, 'uPlot drew no legends');
  const facts = await page.locator('section.key dl.facts').first().textContent();
  check(/Limit in force/.test(facts) && /In flight/.test(facts) && /Frozen/.test(facts) && /Available/.test(facts), 'facts: ' + facts);
  await checkAccessible(page, 'limiter');
  await shoot(page, 'admin-limiter');

  step('spend and the red flags');
  await link(page, 'Spend').click();
  await page.locator('li.flag[data-flag="credit"]').waitFor();
  // The suite runs with $4 of credit: below $5, a red flag; one mail waits in the dead letters.
  await page.locator('li.flag[data-flag="credit"][data-red="true"]').waitFor();
  await page.locator('li.flag[data-flag="dead-letters"][data-red="true"]').waitFor();
  const flags = await page.locator('li.flag').evaluateAll((els) => els.map((e) => `${e.dataset.flag}=${e.dataset.red}`));
  step('flags: ' + flags.join(' '));
  check(!flags.includes('rate-limited=null'), 'the 429 share is unknown after requests were made');
  check((await page.locator('li.flag.red .verdict').first().textContent()).toLowerCase() === 'red flag', 'a red flag does not say so');
  const spent = await page.locator('#spent').textContent();
  check(/spent of \$5/.test(spent), 'spent: ' + spent);
  check((await page.locator('#spent-meter').count()) === 1, 'no meter of the daily budget');
  await page.locator('tr[data-model="gpt-4o-mini"]').waitFor();
  step(`${spent}; ${await page.locator('#credit').textContent()}; ${(await page.locator('tr[data-model="gpt-4o-mini"]').textContent()).replace(/\s+/g, ' ')}`);
  await checkAccessible(page, 'spend');
  await shoot(page, 'admin-spend');

  step('sync jobs across users');
  await link(page, 'Syncs').click();
  await page.locator('#syncs tbody tr[data-name]').first().waitFor();
  const jobs = await page.locator('#syncs tbody tr[data-name]').evaluateAll((rows) => rows.map((r) => r.dataset.name));
  for (const u of users) check(jobs.some((n) => n.startsWith(`users/${u}/syncJobs/`)), `no sync job of ${u} in ${jobs}`);
  await checkAccessible(page, 'syncs');
  await shoot(page, 'admin-syncs');

  step('dead letters: replay one');
  await link(page, 'Dead letters').click();
  const rows = page.locator('#dead-letters tbody tr[data-name]');
  await rows.first().waitFor();
  const row = page.locator('#dead-letters tbody tr[data-name]', { hasText: deadMessage.split('/').pop() });
  check((await row.count()) === 1, 'the dead letter of ' + deadMessage + ' is not listed');
  const dlName = await row.getAttribute('data-name');
  check(dlName.startsWith('users/ada/deadLetters/'), 'dead letter named ' + dlName);
  await checkAccessible(page, 'dead letters');
  await shoot(page, 'admin-dead-letters');
  await row.getByRole('button', { name: /^Replay/ }).click();
  await page.locator(`#dead-letters tr[data-name="${dlName}"]`).waitFor({ state: 'detached' });
  const left = await api('GET', '/v1/users/-/deadLetters');
  check(!(left.deadLetters ?? []).some((d) => d.name === dlName), 'the API still lists the replayed dead letter');

  step('users and keys: create a key, see it once, delete it');
  await link(page, 'Users and keys').click();
  const ada = page.locator('li.user[data-name="users/ada"]');
  await ada.waitFor();
  await ada.getByRole('button', { name: 'API keys' }).click();
  await ada.locator('.keys-panel tbody tr').first().waitFor();
  const keysBefore = (await api('GET', '/v1/users/ada/apiKeys')).apiKeys?.length ?? 0;
  await ada.getByLabel('Name of the new key').fill('console test');
  await ada.getByRole('button', { name: 'Create key' }).click();
  const shown = ada.getByLabel('The new API key');
  await shown.waitFor();
  const newKey = await shown.inputValue();
  check(newKey.length >= 32, 'the new key shown is ' + newKey.length + ' characters');
  const me = await rest(base, newKey)('GET', '/v1/users/me');
  check(me.name === 'users/ada', 'the new key is not ada’s: ' + JSON.stringify(me));
  await ada.locator('.keys-panel tbody tr', { hasText: 'console test' }).waitFor();
  await checkAccessible(page, 'users');
  await shoot(page, 'admin-users');
  const created = ada.locator('.keys-panel tbody tr', { hasText: 'console test' });
  await created.getByRole('button', { name: /^Delete key/ }).click();
  await created.waitFor({ state: 'detached' });
  const keysAfter = (await api('GET', '/v1/users/ada/apiKeys')).apiKeys?.length ?? 0;
  check(keysAfter === keysBefore, `ada has ${keysAfter} keys after the delete, had ${keysBefore} before the create`);

  step('a phone’s width: 375 px');
  await page.setViewportSize({ width: 375, height: 812 });
  for (const [name, what] of [
    ['Limiter', 'limiter'],
    ['Spend', 'spend'],
    ['Syncs', 'syncs'],
    ['Dead letters', 'dead-letters'],
    ['Users and keys', 'users'],
  ]) {
    await link(page, name).click();
    await page.waitForTimeout(1000);
    await checkFits(page, what + ' at 375 px');
    await shoot(page, `admin-${what}-375`);
  }

  check(errors.length === 0, 'console errors: ' + errors.join(' | '));
  step('ok');
} finally {
  await browser.close();
}
