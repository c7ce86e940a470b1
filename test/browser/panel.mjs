// The admin panel driven like a person would: visible labels are clicked,
// what the page shows is read.  Run by test/browser/run.py, which sets up the
// stack and passes its addresses in the environment.
import { createRequire } from 'module';
import { execFileSync } from 'child_process';
import crypto from 'crypto';
import fs from 'fs';
import path from 'path';

const require = createRequire(path.join(process.cwd(), 'package.json'));
const { chromium } = require('playwright-core');

const env = process.env;
const PANEL = env.PANEL_URL;
const TIMEOUT = 10000;
let passed = 0;
let failed = 0;
let page;                               // the page a failing test is photographed on

function psql(sql) {
    return execFileSync(env.PSQL, ['-XAtq', '-v', 'ON_ERROR_STOP=1', '-c', sql], { encoding: 'utf8', timeout: 30000 }).trim();
}

const b64 = buf => Buffer.from(buf).toString('base64url');
function userToken(userId) {
    const head = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
    const body = b64(JSON.stringify({ user: userId, roles: ['subscriber'], exp: Math.floor(Date.now() / 1000) + 3600 }));
    const sig = crypto.createHmac('sha256', env.JWT_SECRET).update(`${head}.${body}`).digest('base64url');
    return `${head}.${body}.${sig}`;
}

async function waitFor(what, predicate, timeout = TIMEOUT) {
    const end = Date.now() + timeout;
    for (;;) {
        if (await predicate()) return;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise(r => setTimeout(r, 200));
    }
}

async function shot(dir, name) {
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}.png`);
    await page.screenshot({ path: file, fullPage: true });
    return file;
}

// One screenshot per main page for the README (only when asked for).
async function docShot(name) {
    if (env.BILLING_DOCS_SCREENSHOTS === '1') {
        await page.waitForTimeout(300);     // let the page settle for the picture only
        await shot(env.DOCS_DIR, name);
    }
}

// A test that hangs fails after TEST_LIMIT instead of holding up the suite,
// saying which step it was at (step(): what the test is doing now).
const TEST_LIMIT = 90000;
let current = '';
const step = what => { current = what; };

async function test(name, fn) {
    let timer;
    current = 'start';
    try {
        await Promise.race([
            fn(),
            new Promise((_, reject) => {
                timer = setTimeout(() => reject(new Error(`no end after ${TEST_LIMIT / 1000} s, at: ${current}`)), TEST_LIMIT);
            }),
        ]);
        passed++;
        console.log(`ok - ${name}`);
    } catch (e) {
        failed++;
        console.log(`not ok - ${name}`);
        for (const line of String(e.stack || e).split('\n')) console.log(`#   ${line}`);
        try {
            console.log(`#   screenshot: ${await shot(env.SHOT_DIR, name)}`);
        } catch (e2) {
            console.log(`#   no screenshot: ${e2.message}`);
        }
    } finally {
        clearTimeout(timer);
    }
}

const visible = (locator, timeout = TIMEOUT) => locator.first().waitFor({ state: 'visible', timeout });

async function signIn(p, email, password) {
    await p.goto(`${PANEL}/#/login`);
    await field(p, 'Username').fill(email);
    await field(p, 'Password').fill(password);
    const [response] = await Promise.all([
        p.waitForResponse(r => r.url().endsWith('/api/rpc/login')),
        p.getByRole('button', { name: 'Sign in' }).click(),
    ]);
    return response.status();
}

// The menu entry with this label; waits until its page is the one shown.
const RESOURCE = {
    Payments: 'admin_payments', Users: 'admin_users', Tariffs: 'admin_tariffs',
    'Personal discounts': 'admin_personal_discounts', 'Months discounts': 'months_discounts',
    'Promo codes': 'admin_promo_codes', Delivery: 'outbox_dead', 'Audit log': 'admin_audit',
};
async function menu(p, name) {
    await p.getByRole('menuitem', { name }).or(p.getByRole('link', { name, exact: true })).first().click();
    if (RESOURCE[name]) await p.waitForURL(new RegExp(`#/${RESOURCE[name]}([?]|$)`));
}

// The input (not a column header or button) labelled so.
const field = (p, label) => p.getByLabel(label).and(p.locator('input, textarea')).first();

// Types into a list's filter and waits until the list took it (react-admin
// applies filters after a pause, by changing the address).
async function filterBy(p, label, value) {
    await field(p, label).fill(value);
    await waitFor(`the filter ${label} = ${value}`, async () => decodeURIComponent(p.url()).includes(value));
}

async function createNew(p) {
    await p.getByRole('link', { name: 'Create' }).click();
    await p.waitForURL(/\/create$/);
}

// How a person of that language reads a timestamp of the database, as
// PostgreSQL itself writes it (an oracle independent of the panel's code).
const DATE_FORMATS = { en: 'MM/DD/YYYY, HH12:MI AM', ru: 'DD.MM.YYYY, HH24:MI' };
function shownTime(sqlExpr, lang) {
    return psql(`SELECT to_char((${sqlExpr}) AT TIME ZONE '${ZONE}', '${DATE_FORMATS[lang]}')`);
}
// Raw timestamps as the api writes them (2026-12-02T01:40:37.123456+00:00).
const ISO = /\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}|\d{2}:\d{2}:\d{2}\.\d{3,6}/;

// The rows of a CSV file (RFC 4180: quoted cells may hold commas, quotes
// doubled, and line breaks), each an array of its cells.
function parseCsv(text) {
    if (!text.startsWith('\ufeff')) throw new Error('the export has no byte order mark');
    text = text.slice(1);
    const rows = [[]];
    let cellText = '';
    let quoted = false;
    for (let i = 0; i < text.length; i++) {
        const c = text[i];
        if (quoted) {
            if (c === '"' && text[i + 1] === '"') { cellText += '"'; i++; } else if (c === '"') quoted = false;
            else cellText += c;
        } else if (c === '"') quoted = true;
        else if (c === ',') { rows[rows.length - 1].push(cellText); cellText = ''; }
        else if (c === '\n' || c === '\r') {
            if (c === '\r' && text[i + 1] === '\n') i++;
            rows[rows.length - 1].push(cellText); cellText = ''; rows.push([]);
        } else cellText += c;
    }
    rows[rows.length - 1].push(cellText);
    return rows.filter(r => r.length > 1 || r[0] !== '');
}

// Presses the list's Export and finds the row whose column `key` is `value`
// in the downloaded CSV; returns a reader of that row's cells by column name.
async function exportedRow(p, key, value) {
    const [download] = await Promise.all([
        p.waitForEvent('download'),
        p.getByRole('button', { name: 'Export' }).click(),
    ]);
    const [header, ...lines] = parseCsv(fs.readFileSync(await download.path(), 'utf8'));
    const row = lines.find(cells => cells[header.indexOf(key)] === value);
    if (!row) throw new Error(`no row with ${key} = ${value} in the export: ${header}`);
    return name => row[header.indexOf(name)];
}

async function confirmDialog(p) {
    await p.getByRole('dialog').getByRole('button', { name: 'Confirm' }).click();
}

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
// A person in Moscow whose browser speaks American English: the panel shows
// times in the browser's zone, in the format of the panel's language.
const ZONE = 'Europe/Moscow';
const context = await browser.newContext({ viewport: { width: 1400, height: 1000 }, locale: 'en-US', timezoneId: ZONE });
context.setDefaultTimeout(8000);
page = await context.newPage();
const stamp = Date.now().toString(36);
const tariffCode = `t${stamp}`;
const buyer = crypto.randomUUID();
const buyerEmail = `buyer-${stamp}@example.com`;
let paymentId;

await test('a wrong password shows an error, and the sixth attempt meets the lock', async () => {
    await docShot('login');
    for (let i = 1; i <= 5; i++) {
        const status = await signIn(page, env.LOCKED_EMAIL, `wrong password ${i}`);
        if (status !== 401) throw new Error(`attempt ${i}: HTTP ${status}`);
        await visible(page.getByText('Wrong e-mail or password'));
    }
    const status = await signIn(page, env.LOCKED_EMAIL, env.LOCKED_PASSWORD);
    if (status !== 429) throw new Error(`sixth attempt: HTTP ${status}`);
    await visible(page.getByText('too many failed sign-ins'));
});

await test('sign in', async () => {
    const status = await signIn(page, env.ADMIN_EMAIL, env.ADMIN_PASSWORD);
    if (status !== 200) throw new Error(`HTTP ${status}`);
    await visible(page.getByText('Revenue per day'));
    await visible(page.getByText(env.ADMIN_NAME));
});

await test('create a tariff', async () => {
    await menu(page, 'Tariffs');
    await createNew(page);
    await field(page, 'Code').fill(tariffCode);
    await field(page, 'Title').fill('Browser test films');
    // The price is typed in roubles; more decimals than the rouble has are
    // refused before anything is sent.
    await field(page, 'Monthly price').fill('199.001');
    await page.getByRole('button', { name: 'Save' }).click();
    await visible(page.getByText('RUB has 2 digits after the decimal point, no more'));
    if (psql(`SELECT count(*) FROM marketing.tariffs WHERE code = '${tariffCode}'`) !== '0') {
        throw new Error('a price with three decimals was sent');
    }
    await field(page, 'Monthly price').fill('199.00');
    await page.getByRole('button', { name: 'Save' }).click();
    await visible(page.getByText('Price history'));
    if (psql(`SELECT monthly_price FROM marketing.tariffs WHERE code = '${tariffCode}'`) !== '19900') {
        throw new Error('the tariff is not in the database');
    }
});

await test('change its price and see the history', async () => {
    await field(page, 'New monthly price').fill('249.999');
    await visible(page.getByText('RUB has 2 digits after the decimal point, no more'));
    if (!await page.getByRole('button', { name: 'Change price' }).isDisabled()) throw new Error('Change price enabled');
    await field(page, 'New monthly price').fill('249');
    await page.getByRole('button', { name: 'Change price' }).click();
    await confirmDialog(page);
    await visible(page.getByText('Monthly price: RUB 249.00'));
    // The history in roubles too, the old and the new price.
    await visible(page.getByRole('cell', { name: 'RUB 249.00', exact: true }));
    await visible(page.getByRole('cell', { name: 'RUB 199.00', exact: true }));
    if (psql(`SELECT monthly_price FROM marketing.tariffs WHERE code = '${tariffCode}'`) !== '24900') {
        throw new Error('the server did not receive 24900 kopecks');
    }
    await docShot('tariff');
});

await test('set a personal discount', async () => {
    await menu(page, 'Personal discounts');
    await createNew(page);
    await field(page, 'User id').fill(buyer);
    await field(page, 'Percent').fill('15');
    await page.getByRole('button', { name: 'Save' }).click();
    await visible(page.getByText(buyer));
    await docShot('personal-discounts');
});

await test('set a months tier', async () => {
    await menu(page, 'Months discounts');
    await createNew(page);
    await field(page, 'From months').fill('9');
    await field(page, 'Percent').fill('12');
    await page.getByRole('button', { name: 'Save' }).click();
    await visible(page.getByRole('cell', { name: '9', exact: true }));
    if (psql('SELECT percent FROM marketing.months_discounts WHERE months = 9') !== '12.00') {
        throw new Error('the tier is not in the database');
    }
    await docShot('months-discounts');
});

await test('create and delete a promo code', async () => {
    const code = `SUMMER${stamp}`.toUpperCase().slice(0, 20);
    await menu(page, 'Promo codes');
    await createNew(page);
    await field(page, 'Code').fill(code);
    await field(page, 'Percent').fill('20');
    await field(page, 'Valid until').fill('2030-01-01T00:00');
    await page.getByRole('button', { name: 'Save' }).click();
    const row = page.getByRole('row').filter({ hasText: code });
    await visible(row);
    await docShot('promo-codes');
    await row.getByRole('button', { name: 'Delete' }).click();
    await confirmDialog(page);
    await waitFor('the soft delete', async () =>
        psql(`SELECT deleted_at IS NOT NULL FROM marketing.promo_codes WHERE code = '${code}'`) === 't');
});

await test('an export keeps a formula-like title as text and gives the price in roubles', async () => {
    // A title a spreadsheet would run as a formula (CSV injection).
    const code = `x${stamp}`;
    const title = '=HYPERLINK("http://attacker.example/","Open")';
    psql(`SELECT billing.create_tariff('${code}', $t$${title}$t$, 12345)`);
    await menu(page, 'Tariffs');
    await visible(page.getByRole('cell', { name: code, exact: true }));
    const cell = await exportedRow(page, 'code', code);
    if (cell('title') !== `'${title}`) throw new Error(`title: ${cell('title')}`);
    if (cell('monthly_price') !== '123.45') throw new Error(`price: ${cell('monthly_price')}`);
});

await test('buy as a user through the Stripe stand-in, find the payment by e-mail, refund it', async () => {
    const token = userToken(buyer);
    const call = async (fn, args) => {
        const r = await page.request.post(`${PANEL}/api/rpc/${fn}`, { data: args, headers: { Authorization: `Bearer ${token}` } });
        if (!r.ok()) throw new Error(`${fn}: HTTP ${r.status()} ${await r.text()}`);
        return r.json();
    };
    step('invoice and checkout over HTTP');
    paymentId = await call('create_invoice', { tariff: tariffCode, months: 1 });
    const url = await call('checkout', { payment_id: paymentId });
    // The buyer presses "Pay" on the stand-in's payment page: its form's POST
    // (sent directly: a second page of the browser once hung on the redirect
    // under load, and the payment page is not what these tests are about).
    const paid = await page.request.post(url, { form: { action: 'pay' }, maxRedirects: 0, timeout: 15000 });
    if (paid.status() !== 303) throw new Error(`the payment page answered ${paid.status()}`);
    step('waiting for the webhook');
    await waitFor('the webhook to settle the payment', async () =>
        psql(`SELECT status FROM billing.payments WHERE id = '${paymentId}'`) === 'paid');
    // What the auth service's GetUserInfo would have filled in.
    psql(`UPDATE billing.customers SET email = '${buyerEmail}' WHERE user_id = '${buyer}'`);

    // 249.00 less the personal 15 %: 21165 kopecks, which a person reads as
    // 211.65 roubles on every page.
    if (psql(`SELECT total FROM billing.payments WHERE id = '${paymentId}'`) !== '21165') {
        throw new Error('unexpected total');
    }
    step('finding the payment in the list');
    await menu(page, 'Payments');
    await filterBy(page, 'E-mail', buyerEmail);
    const row = page.getByRole('row').filter({ hasText: buyerEmail });
    await visible(row);
    await visible(row.getByRole('cell', { name: 'RUB 211.65', exact: true }));
    await visible(row.getByRole('cell', { name: shownTime(`SELECT created_at FROM billing.payments WHERE id = '${paymentId}'`, 'en'), exact: true }));
    await docShot('payments');
    step('exporting the list');
    const cell = await exportedRow(page, 'id', paymentId);
    // Amounts in roubles with a decimal point, the currency beside them.
    for (const [name, want] of [['total', '211.65'], ['monthly_price', '249.00'], ['list_price', '249.00'],
                                ['currency', 'RUB'], ['status', 'paid']]) {
        if (cell(name) !== want) throw new Error(`export: ${name} = ${cell(name)}, not ${want}`);
    }
    await row.click();
    await visible(page.getByText('History'));
    step('reading the amounts of the payment');
    for (const [label, amount] of [['Monthly price', 'RUB 249.00'], ['List price', 'RUB 249.00'],
                                   ['Discount', 'RUB 37.35'], ['Total', 'RUB 211.65']]) {
        const shown = (await page.locator('.RaLabeled-label').filter({ hasText: new RegExp(`^${label}$`) })
            .locator('xpath=..').first().innerText()).replace(/\s+/g, ' ');
        if (shown !== `${label} ${amount}`) throw new Error(`${label}: ${shown}`);
    }
    if (/\b21,?165\b/.test(await page.locator('main').innerText())) throw new Error('minor units on the page');
    step('refunding');
    await page.getByRole('button', { name: 'Refund' }).click();
    await confirmDialog(page);
    step('waiting for "refunded"');
    await waitFor('the status "refunded" on the page', async () => {
        if (await page.locator('[data-status="refunded"]').count() > 0) return true;
        await page.reload();
        await page.waitForLoadState('networkidle');
        return false;
    }, 30000);
    await docShot('payment');
});

await test('retry a dead message', async () => {
    const id = psql(`INSERT INTO billing.outbox (kind, payload, idempotency_key, status, attempts, last_error)
                     VALUES ('notify', '{"user_id": "${buyer}", "event": "test"}', 'browser-dead-${stamp}', 'dead', 8,
                             'UNAVAILABLE: the notification service is down (browser test)') RETURNING id`);
    await menu(page, 'Delivery');
    const row = page.getByRole('row').filter({ hasText: 'the notification service is down' });
    await visible(row);
    await docShot('delivery');
    await row.getByRole('button', { name: 'Retry' }).click();
    await confirmDialog(page);
    await visible(page.getByText('Done'));
    await waitFor('the audit of the retry', async () =>
        psql(`SELECT count(*) FROM billing.admin_audit WHERE action = 'outbox_retry_dead'`) !== '0');
    if (psql(`SELECT attempts FROM billing.outbox WHERE id = ${id}`) === '8') throw new Error('not requeued');
});

await test('mark an unpaid payment paid with a reason', async () => {
    const r = await page.request.post(`${PANEL}/api/rpc/create_invoice`, {
        data: { tariff: tariffCode, months: 2 }, headers: { Authorization: `Bearer ${userToken(buyer)}` },
    });
    if (!r.ok()) throw new Error(`create_invoice: HTTP ${r.status()}`);
    const invoice = await r.json();
    await menu(page, 'Payments');
    await filterBy(page, 'E-mail', buyerEmail);
    await page.locator('[data-status="invoiced"]').first().click();
    await visible(page.getByText('History'));
    await page.getByRole('button', { name: 'Mark paid' }).click();
    // Without a reason the server refuses, and the page says why.
    await confirmDialog(page);
    await visible(page.getByText('a reason is required to mark a payment paid'));
    await page.getByRole('button', { name: 'Mark paid' }).click();
    await field(page, 'Reason').fill('bank transfer #4411');
    await confirmDialog(page);
    await visible(page.locator('[data-status="paid"]'));
    const reason = psql(`SELECT after ->> 'reason' FROM billing.admin_audit
                         WHERE action = 'mark_payment_paid' AND target = 'payment:${invoice}'`);
    if (reason !== 'bank transfer #4411') throw new Error(`audited reason: ${reason}`);
});

await test('discard a dead message', async () => {
    const id = psql(`INSERT INTO billing.outbox (kind, payload, idempotency_key, status, attempts, last_error)
                     VALUES ('notify', '{"user_id": "${buyer}", "event": "discard"}', 'browser-discard-${stamp}',
                             'dead', 8, 'INVALID_ARGUMENT: never to be sent (browser test)') RETURNING id`);
    await menu(page, 'Delivery');
    const row = page.getByRole('row').filter({ hasText: 'never to be sent' });
    await visible(row);
    await row.getByRole('button', { name: 'Discard' }).click();
    await confirmDialog(page);
    await visible(page.getByText('Done'));
    await waitFor('the message to leave the outbox', async () =>
        psql(`SELECT count(*) FROM billing.outbox WHERE id = ${id}`) === '0');
    await waitFor('the row to leave the list', async () => await row.count() === 0);
});

await test('the dashboard shows the revenue, the refunds and the delivery', async () => {
    await menu(page, 'Dashboard');
    const totals = page.locator('.MuiCard-root').filter({ hasText: 'Paid and refunded' });
    await visible(totals.getByText('RUB', { exact: true }));
    await visible(totals.getByText('Refund rate'));
    // Paid: the 2 months marked paid (2 × 249.00 less 15 %); refunded: the first.
    await visible(totals.getByText('RUB 423.30', { exact: true }));
    await visible(totals.getByText('RUB 211.65', { exact: true }));
    await visible(page.locator('.recharts-legend-item').filter({ hasText: tariffCode }));   // the chart, loaded lazily
    // The chart: its scale in roubles, its days as dates, its tooltip the exact amount.
    await visible(page.locator('.recharts-yAxis-tick-labels text'));
    const marks = await page.locator('.recharts-yAxis-tick-labels text').allTextContents();
    if (!marks.length || !marks.every(m => /^RUB\s[\d,]+(\.\d{1,2})?$/.test(m.trim()))) throw new Error(`the scale: ${marks}`);
    if (!marks.some(m => /[1-9]/.test(m))) throw new Error(`the scale: ${marks}`);
    const days = await page.locator('.recharts-xAxis-tick-labels text').allTextContents();
    if (!days.length || !days.every(d => /^\d{2}\/\d{2}$/.test(d.trim()))) throw new Error(`the days: ${days}`);
    const dot = page.locator('.recharts-line-dots circle, .recharts-line-dot').first();
    const box = await dot.boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await visible(page.locator('.recharts-tooltip-wrapper').filter({ hasText: 'RUB 423.30' }));
    await page.getByRole('button', { name: 'Last 90 days' }).click();
    await visible(totals.getByText('RUB'));
    await docShot('dashboard');
});

await test('each change shows in the audit under the admin\'s name', async () => {
    await menu(page, 'Audit log');
    await filterBy(page, 'Admin', env.ADMIN_NAME);
    for (const action of ['create_tariff', 'set_tariff_price', 'set_personal_discount', 'set_months_discount',
                          'create_promo_code', 'delete_promo_code', 'cancel_payment_for', 'mark_payment_paid',
                          'outbox_retry_dead', 'outbox_discard_dead']) {
        await visible(page.getByRole('row').filter({ hasText: action }).filter({ hasText: env.ADMIN_NAME }));
    }
    // Before and after side by side, the changed field marked.
    await page.getByRole('row').filter({ hasText: 'set_tariff_price' }).first().click();
    await visible(page.locator('[data-changed="yes"]').filter({ hasText: 'monthly_price' }));
    await docShot('audit');
    const names = psql(`SELECT string_agg(DISTINCT actor_name, ',') FROM billing.admin_audit
                        WHERE actor = 'billing_admin' AND action IN ('create_tariff', 'set_tariff_price', 'set_personal_discount',
                                         'set_months_discount', 'create_promo_code', 'delete_promo_code',
                                         'cancel_payment_for', 'mark_payment_paid', 'outbox_retry_dead',
                                         'outbox_discard_dead')`);
    if (names !== env.ADMIN_NAME) throw new Error(`audit names: ${names}`);
});

await test('a user page shows what billing knows about the user', async () => {
    await menu(page, 'Users');
    await filterBy(page, 'E-mail', buyerEmail);
    await page.getByRole('row').filter({ hasText: buyer }).click();
    await visible(page.getByText('Subscriptions and access'));
    await visible(page.getByRole('cell', { name: tariffCode }).first());
    // Paid until and grace until as dates and times of the admin's zone.
    const sub = page.getByRole('row').filter({ has: page.getByRole('cell', { name: tariffCode, exact: true }) }).first();
    const until = `(SELECT s.ends_at FROM billing.subscriptions s JOIN marketing.tariffs t ON t.id = s.tariff_id
                    WHERE s.user_id = '${buyer}' AND t.code = '${tariffCode}')`;
    await visible(sub.getByRole('cell', { name: shownTime(until, 'en'), exact: true }));
    await visible(sub.getByRole('cell', { name: shownTime(until.replace('s.ends_at', 's.grace_ends_at'), 'en'), exact: true }));
    await visible(page.getByRole('cell', { name: 'RUB 423.30', exact: true }));
    const text = await page.locator('main').innerText();
    if (ISO.test(text)) throw new Error(`a raw timestamp on the page: ${text.match(ISO)[0]}`);
    await docShot('user');
});

await test('switching to Russian shows Russian labels, dates and amounts, and takes a price typed with a comma', async () => {
    await page.getByRole('button', { name: 'English' }).click();
    await page.getByRole('menuitem', { name: 'Русский' }).click();
    await visible(page.getByText('Платежи'));
    await visible(page.getByText('Журнал действий'));
    // Still on the user's page: its dates and amounts as a Russian reads them.
    const until = `(SELECT s.ends_at FROM billing.subscriptions s JOIN marketing.tariffs t ON t.id = s.tariff_id
                    WHERE s.user_id = '${buyer}' AND t.code = '${tariffCode}')`;
    const ru = shownTime(until, 'ru');
    await visible(page.getByRole('cell', { name: ru, exact: true }));
    await visible(page.getByRole('cell', { name: '423,30 ₽', exact: true }));
    const text = await page.locator('main').innerText();
    if (/\d{2}\/\d{2}\/\d{4}|AM|PM/.test(text)) throw new Error(`a US date under Russian: ${text}`);
    if (ISO.test(text)) throw new Error(`a raw timestamp on the page: ${text.match(ISO)[0]}`);
    await docShot('russian');
    // A price typed the Russian way, with a decimal comma.
    await menu(page, 'Тарифы');
    await page.waitForURL(/#\/admin_tariffs([?]|$)/);
    await page.getByRole('row').filter({ hasText: tariffCode }).filter({ hasText: 'Browser test films' }).click();
    await field(page, 'Новая цена в месяц').fill('259,90');
    await page.getByRole('button', { name: 'Изменить цену' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Подтвердить' }).click();
    await visible(page.getByText('Цена в месяц: 259,90 ₽'));
    if (psql(`SELECT monthly_price FROM marketing.tariffs WHERE code = '${tariffCode}'`) !== '25990') {
        throw new Error('the server did not receive 25990 kopecks');
    }
    await page.getByRole('button', { name: 'Русский' }).click();
    await page.getByRole('menuitem', { name: 'English' }).click();
    await visible(page.getByText('Payments'));
    // and back: the same page as an American reads it.
    await visible(page.getByText('Monthly price: RUB 259.90'));
    const changed = shownTime(`SELECT max(h.changed_at) FROM marketing.tariff_price_history h
                               JOIN marketing.tariffs t ON t.id = h.tariff_id WHERE t.code = '${tariffCode}'`, 'en');
    await visible(page.getByRole('cell', { name: changed, exact: true }));
});

// ---- auto-renewal ----------------------------------------------------------
// Two buyers of the tariff pay through checkouts that saved their cards (as
// test/sql/renewals.sql does: the checkout's row is what the Stripe stand-in
// would have reported).  The renewal job runs at each one's renew_at on the
// test clock, in a session without a Stripe key (the charge cannot reach a
// provider and stays pending), and each charge is settled as the provider
// would report it: renewer's is declined twice, then paid on the second retry;
// lapser's is declined once.  Of the two ends of term that failed, one was
// recovered: the dashboard's recovery rate is 50 %.
const renewer = crypto.randomUUID();
const lapser = crypto.randomUUID();
const renewerEmail = `renewer-${stamp}@example.com`;
function savedCardPurchase(user, email, label) {
    const id = psql(`SELECT billing.create_invoice('${user}', '${tariffCode}', 1)`);
    psql(`UPDATE billing.payments SET provider = 'stripe', provider_session_id = 'cs_${label}_${stamp}', status = 'pending',
                 save_method = true, provider_customer = 'cus_${label}', provider_method = 'pm_${label}',
                 card_brand = 'visa', card_last4 = '4242'
           WHERE id = '${id}'`);
    psql(`SELECT billing.settle_payment('${id}', 'paid', 'pi_${label}_${stamp}', NULL, 'webhook')`);
    psql(`UPDATE billing.customers SET email = '${email}' WHERE user_id = '${user}'`);
}
// The job at the user's renew_at, then the new charge settled with `outcome`.
function renewAndSettle(user, outcome) {
    return psql(`SET billing.stripe_secret_key = '';
                 SET client_min_messages = error;
                 SELECT set_config('billing.test_clock', (SELECT renew_at::text FROM billing.subscriptions
                                                          WHERE user_id = '${user}'), false);
                 CALL billing.run_renewals(NULL);
                 SELECT billing.settle_payment(id, '${outcome}', 'pi_auto', NULL, 'webhook')
                   FROM billing.payments WHERE user_id = '${user}' AND renewal_of IS NOT NULL AND status = 'pending'`)
        .split('\n').pop();                  // (psql prints every statement's result: the settle's is last)
}
const renewalOf = user => `(SELECT max(renewal_of) FROM billing.payments WHERE user_id = '${user}')`;

await test('a user page shows auto-renewal and the attempts of a charge that failed twice, then recovered', async () => {
    step('making the renewals');
    savedCardPurchase(renewer, renewerEmail, 'renewer');
    savedCardPurchase(lapser, `lapser-${stamp}@example.com`, 'lapser');
    for (const outcome of ['failed', 'failed', 'paid']) {
        const got = renewAndSettle(renewer, outcome);
        if (got !== outcome) throw new Error(`the renewer's charge: ${got}, not ${outcome}`);
    }
    if (renewAndSettle(lapser, 'failed') !== 'failed') throw new Error('the lapser\'s charge was not declined');
    const price = psql(`SELECT monthly_price FROM marketing.tariffs WHERE code = '${tariffCode}'`);
    const amount = `RUB ${(Number(price) / 100).toFixed(2)}`;

    step('opening the user');
    await menu(page, 'Users');
    await filterBy(page, 'E-mail', renewerEmail);
    await page.getByRole('row').filter({ hasText: renewer }).click();
    await visible(page.getByText('Subscriptions and access'));
    const sub = page.getByRole('row').filter({ has: page.getByRole('cell', { name: tariffCode, exact: true }) }).first();
    await visible(sub.getByRole('cell', { name: 'on', exact: true }));
    await visible(sub.getByRole('cell', { name: 'chosen at checkout', exact: true }));
    await visible(sub.getByRole('cell', { name: 'visa •••• 4242', exact: true }));
    await visible(sub.getByRole('cell', { name: '0', exact: true }));          // failures of the present end: none
    const next = shownTime(`SELECT renew_at FROM billing.subscriptions WHERE user_id = '${renewer}'`, 'en');
    await visible(sub.getByRole('cell', { name: `${next}, ${amount}`, exact: true }));

    step('reading the attempts');
    const end = shownTime(`SELECT min(renewal_of) FROM billing.payments WHERE user_id = '${renewer}'`, 'en');
    await visible(page.getByText(`${tariffCode}: renewal of the term ending ${end}`, { exact: true }));
    const attempts = page.locator('[data-renewal-of]').filter({ hasText: end }).getByRole('row');
    await waitFor('three attempts', async () => await attempts.count() === 4);   // with the header
    for (const [n, status] of [[1, 'failed'], [2, 'failed'], [3, 'paid']]) {
        const row = attempts.filter({ has: page.getByRole('cell', { name: String(n), exact: true }) });
        await visible(row.getByRole('cell', { name: status, exact: true }));
        await visible(row.getByRole('cell', { name: amount, exact: true }));
        const at = shownTime(`SELECT coalesce(closed_at, paid_at) FROM billing.payments
                              WHERE user_id = '${renewer}' AND renewal_attempt = ${n}`, 'en');
        await visible(row.getByRole('cell', { name: at, exact: true }));
    }
    const text = await page.locator('main').innerText();
    if (ISO.test(text)) throw new Error(`a raw timestamp on the page: ${text.match(ISO)[0]}`);
    await docShot('user-auto-renewal');
});

await test('the payments list marks the automatic charges, and an automatic charge shows its attempts', async () => {
    await menu(page, 'Payments');
    await filterBy(page, 'E-mail', renewerEmail);
    await page.getByLabel('Automatic charges').check();
    await waitFor('the filter on automatic charges', async () => decodeURIComponent(page.url()).includes('"automatic":true'));
    await waitFor('only the three automatic charges', async () =>
        await page.locator('[data-automatic]').count() === 3 && await page.getByRole('row').count() === 4);
    await visible(page.getByRole('cell', { name: 'automatic, attempt 2', exact: true }));
    // Off again: the purchase too, unmarked.
    await page.getByLabel('Automatic charges').uncheck();
    await waitFor('all four payments', async () => await page.getByRole('row').count() === 5);
    if (await page.locator('[data-automatic]').count() !== 3) throw new Error('the purchase is marked automatic');
    await page.getByLabel('Automatic charges').check();
    await waitFor('only the automatic charges again', async () => await page.getByRole('row').count() === 4);
    await page.getByRole('row').filter({ hasText: 'automatic, attempt 3' }).click();
    await visible(page.getByText('Attempts of this automatic charge'));
    const end = shownTime(`SELECT min(renewal_of) FROM billing.payments WHERE user_id = '${renewer}'`, 'en');
    await visible(page.getByText(`${tariffCode}: renewal of the term ending ${end}`, { exact: true }));
    await waitFor('the three attempts', async () => await page.locator('[data-renewal-of] [data-attempt]').count() === 3);
});

await test('the dashboard shows the recovery rate of failed automatic charges', async () => {
    await menu(page, 'Dashboard');
    const card = page.locator('.MuiCard-root').filter({ hasText: 'Failed automatic charges recovered' });
    await visible(card);
    const stat = label => card.getByText(label, { exact: true }).locator('xpath=..');
    await waitFor('failed 2, recovered 1, 50 %', async () =>
        (await stat('Failed').innerText()).replace(/\s+/g, ' ') === 'Failed 2' &&
        (await stat('Recovered').innerText()).replace(/\s+/g, ' ') === 'Recovered 1' &&
        (await stat('Recovery rate').innerText()).replace(/\s+/g, ' ') === 'Recovery rate 50 %');
});

await test('an admin switches a buyer\'s auto-renewal off, audited; the labels in Russian', async () => {
    await menu(page, 'Users');
    await filterBy(page, 'E-mail', `lapser-${stamp}@example.com`);
    await page.getByRole('row').filter({ hasText: lapser }).click();
    const sub = page.getByRole('row').filter({ has: page.getByRole('cell', { name: tariffCode, exact: true }) }).first();
    await visible(sub.getByRole('cell', { name: '1', exact: true }));          // one declined charge so far
    await sub.getByRole('button', { name: 'Switch auto-renewal off' }).click();
    await confirmDialog(page);
    await visible(sub.getByRole('cell', { name: 'by an admin', exact: true }));
    await visible(sub.getByRole('cell', { name: 'off', exact: true }));
    const audited = psql(`SELECT count(*) FROM billing.admin_audit a JOIN billing.subscriptions s
                            ON a.target = 'subscription:' || s.id
                          WHERE a.action = 'set_auto_renew' AND s.user_id = '${lapser}'
                            AND a.actor_name = '${env.ADMIN_NAME.replace(/'/g, "''")}'`);
    if (audited !== '1') throw new Error(`audit rows: ${audited}`);
    if (psql(`SELECT auto_renew_reason FROM billing.subscriptions WHERE user_id = '${lapser}'`) !== 'admin') {
        throw new Error('not switched off by the admin');
    }
    step('in Russian');
    await page.getByRole('button', { name: 'English' }).click();
    await page.getByRole('menuitem', { name: 'Русский' }).click();
    await visible(page.getByText('Автопродление', { exact: true }));
    await visible(sub.getByRole('cell', { name: 'администратором', exact: true }));
    await visible(sub.getByRole('cell', { name: 'выключено', exact: true }));
    await visible(page.getByText('Автосписания', { exact: true }));
    await visible(page.getByRole('cell', { name: 'не прошёл', exact: true }));
    await visible(page.getByText(`${tariffCode}: продление срока, истекающего ${shownTime(renewalOf(lapser), 'ru')}`, { exact: true }));
    await menu(page, 'Главная');
    await visible(page.getByText('Восстановленные автосписания'));
    await visible(page.getByText('Доля восстановленных'));
    await page.getByRole('button', { name: 'Русский' }).click();
    await page.getByRole('menuitem', { name: 'English' }).click();
    await visible(page.getByText('Payments'));
});

await test('a disabled account is signed out on its next request', async () => {
    const other = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    const saved = page;
    page = await other.newPage();
    try {
        if (await signIn(page, env.DISABLED_EMAIL, env.DISABLED_PASSWORD) !== 200) throw new Error('sign-in failed');
        await visible(page.getByText('Revenue per day'));
        psql(`SELECT billing.disable_admin_account('${env.DISABLED_EMAIL}')`);
        await menu(page, 'Payments');
        await visible(page.getByRole('button', { name: 'Sign in' }));
    } finally {
        await other.close();
        page = saved;
    }
});

await test('a user\'s token opens no admin page and no admin endpoint', async () => {
    const other = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    const saved = page;
    page = await other.newPage();
    try {
        const token = userToken(crypto.randomUUID());
        await page.goto(`${PANEL}/`);
        await page.evaluate(t => localStorage.setItem('billing.admin.token', t), token);
        await page.goto(`${PANEL}/#/admin_payments`);
        await visible(page.getByRole('button', { name: 'Sign in' }));
        for (const [method, url, data] of [['get', '/api/admin_payments'], ['get', '/api/admin_audit'],
                                           ['post', '/api/rpc/admin_dashboard', { days: 30 }],
                                           ['post', '/api/rpc/set_months_discount', { months: 2, percent: 50 }]]) {
            const r = await page.request[method](`${PANEL}${url}`, { data, headers: { Authorization: `Bearer ${token}` } });
            if (r.status() !== 403) throw new Error(`${url}: HTTP ${r.status()}`);
        }
    } finally {
        await other.close();
        page = saved;
    }
});

await test('the server sends the security headers', async () => {
    const r = await page.request.get(`${PANEL}/`);
    const h = r.headers();
    if (!/script-src 'self'/.test(h['content-security-policy'] || '')) throw new Error('no CSP');
    if (h['x-frame-options'] !== 'DENY') throw new Error('no X-Frame-Options');
    if (!h['referrer-policy']) throw new Error('no Referrer-Policy');
    const big = await page.request.post(`${PANEL}/api/rpc/login`, { data: { email: 'x'.repeat(100000), password: 'y' } });
    if (big.status() !== 413) throw new Error(`a 100 kB body: HTTP ${big.status()}`);
});

await test('sign out', async () => {
    await page.getByRole('button', { name: 'Profile' }).click();
    await page.getByRole('menuitem', { name: 'Logout' }).click();
    await visible(page.getByRole('button', { name: 'Sign in' }));
    await page.goto(`${PANEL}/#/admin_payments`);
    await visible(page.getByRole('button', { name: 'Sign in' }));
});

// (a hung page must not keep the suite from ending)
await Promise.race([browser.close(), new Promise(resolve => setTimeout(resolve, 20000))]);
console.log(`# browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
