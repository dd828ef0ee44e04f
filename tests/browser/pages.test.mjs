// The Conversations page (P/ui/sessions) and the admin dashboard (P/ui/admin) in headless
// Chromium, against the real server binary and the mock provider (support/). One server,
// provider and browser serve the whole file; each test has its own users and contexts.
//
// The pages' DOM contract these tests rely on:
//   both pages: #status[data-state] (loading | ready | error | limited | expired | offline,
//   and not-found for a shared link that no longer works)
//   sessions page: #sessions > li.session[data-session-id][data-state=active|ended] holding
//   a.session-name (opens the chat page), .state, the buttons "End" and "Share link", and
//   once shared .share-url (input) with "Copy" and "Revoke"; #new-chat; with ?shared=<token>
//   #shared-view holding #messages .message[data-role] (read-only, no buttons)
//   admin page: #refresh-now, #auto-refresh[aria-pressed], #metrics .metric[data-metric],
//   #filters (form), th[data-sort][aria-sort] > button, #sessions > tr[data-session-id]
//   (class "help" and a "needs help" badge when help was requested) with a "Take over"
//   button; #assist (the assisted conversation) with #assist-messages, #assist-status,
//   #assist-prompt, #assist-send and #release.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { assertClean, openPage } from './support/browser.mjs';
import { chatAndWait, suite, uniqueUser, waitForStatus, waitUntil } from './support/harness.mjs';
import { adminToken, userToken } from './support/jwt.mjs';
import { JWT_SECRET, PREFIX, startServer } from './support/server.mjs';

const TEST_TIMEOUT_MS = 60000;
const INJECTION = '<img src=x onerror=window.__pwned=1>';
const clean = (page, options = {}) => assertClean(page, options);

const stack = suite();
const { withContext, open, openChat } = stack;

// ---------------------------------------------------------------------------------------
// Helpers

function chatSessionId(page) {
    return page.evaluate(() => document.querySelector('#messages')?.dataset.sessionId);
}

async function assertNotPwned(page) {
    assert.equal(await page.evaluate(() => window.__pwned), undefined, 'injected markup ran');
}

// ---------------------------------------------------------------------------------------

describe('conversations page', { timeout: TEST_TIMEOUT_MS * 3 }, () => {
    test('lists a conversation, opens it in the chat page, ends it', { timeout: TEST_TIMEOUT_MS }, () =>
        withContext(async (context) => {
            const user = uniqueUser('lister');
            const chat = await openChat(context, user);
            await chatAndWait(chat, `Hello ${INJECTION}`, 1);
            const id = await chatSessionId(chat);
            assert.ok(id, 'the chat page shows its session id');

            const page = await open(context, '/sessions', userToken(user, JWT_SECRET));
            await waitForStatus(page, 'ready');
            const row = page.locator(`#sessions li.session[data-session-id="${id}"]`);
            assert.equal(await row.count(), 1, 'the conversation is listed');
            assert.equal(await row.getAttribute('data-state'), 'active');
            const name = await row.locator('.session-name').textContent();
            assert.ok(name.includes('<img src=x'), `the name (cut by the server) is shown as text: ${name}`);
            assert.equal(await page.locator('#sessions img').count(), 0, 'the name became markup');
            assert.match(await row.textContent(), /2 messages/);

            // Opens in the chat page, on that session.
            await row.locator('a.session-name').click();
            await page.waitForURL(/\/ui\/\?session=/);
            await waitForStatus(page, 'connected');
            assert.equal(await chatSessionId(page), id);
            await page.waitForSelector('#messages .message[data-role="ai"]');
            await page.goBack();
            await waitForStatus(page, 'ready');

            // Ends it after a confirmation.
            let asked = '';
            page.once('dialog', (dialog) => {
                asked = dialog.message();
                dialog.accept();
            });
            await page.locator(`#sessions li.session[data-session-id="${id}"] button`, { hasText: 'End' }).click();
            await waitUntil(
                page,
                'the row to show the conversation ended',
                (sid) => document.querySelector(`#sessions li.session[data-session-id="${sid}"]`)?.dataset.state === 'ended',
                id,
            );
            assert.match(asked, /End the conversation/);
            assert.equal(
                await page.locator(`#sessions li.session[data-session-id="${id}"] .state`).textContent(),
                'ended',
            );
            await waitForStatus(chat, 'ended');
            await assertNotPwned(page);
            clean(page);
            clean(chat);
        }));

    test('a share link shows the conversation read-only until it is revoked', { timeout: TEST_TIMEOUT_MS }, () =>
        withContext(async (context) => {
            const user = uniqueUser('sharer');
            const chat = await openChat(context, user);
            await chatAndWait(chat, `Share this ${INJECTION}`, 1);
            const id = await chatSessionId(chat);

            const page = await open(context, '/sessions', userToken(user, JWT_SECRET));
            await waitForStatus(page, 'ready');
            const row = page.locator(`#sessions li.session[data-session-id="${id}"]`);
            await row.getByRole('button', { name: /Create a share link/ }).click();
            await row.locator('.share-url').waitFor();
            const url = await row.locator('.share-url').inputValue();
            assert.ok(url.startsWith(`${stack.server.baseUrl}${PREFIX}/ui/sessions?shared=`), `the full link: ${url}`);

            await withContext(async (anonymous) => {
                const shared = await openPage(anonymous);
                await shared.goto(url);
                await waitForStatus(shared, 'ready');
                const roles = await shared.$$eval('#shared-view .message', (m) => m.map((e) => e.dataset.role));
                assert.deepEqual(roles, ['user', 'ai']);
                const userText = await shared.locator('#shared-view .message[data-role="user"] .content').textContent();
                assert.ok(userText.includes(INJECTION), `the user's message is text: ${userText}`);
                assert.equal(await shared.locator('#shared-view img').count(), 0);
                assert.equal(await shared.locator('#shared-view .message[data-role="ai"] .content li').count(), 2, 'Markdown rendered');
                assert.equal(await shared.locator('#shared-view form, #shared-view textarea').count(), 0, 'no controls');
                assert.equal(await shared.locator('#nav').isVisible(), false, 'no conversation controls');
                assert.equal(await shared.locator('#sessions li').count(), 0);
                await assertNotPwned(shared);
                clean(shared);

                await row.getByRole('button', { name: /Revoke/ }).click();
                await waitUntil(page, 'the link to be revoked', () => /revoked/i.test(document.querySelector('#status')?.textContent ?? ''));

                const gone = await openPage(anonymous);
                await gone.goto(url);
                await waitForStatus(gone, 'not-found');
                assert.match(await gone.locator('#status').textContent(), /not found|expired|revoked/i);
                assert.equal(await gone.locator('#shared-view').isVisible(), false);
                // The browser reports the 404 of the API call itself.
                clean(gone, { allowConsole: [/status of 404/] });
            });
            clean(page);
        }));
});

describe('admin dashboard', { timeout: TEST_TIMEOUT_MS * 2 }, () => {
    test('a help request is highlighted; the admin takes over, speaks, and releases', { timeout: TEST_TIMEOUT_MS }, () =>
        withContext(async (userContext) => {
            const user = uniqueUser('helpee');
            const chat = await openChat(userContext, user);
            await chatAndWait(chat, `Need help ${INJECTION}`, 1);
            const id = await chatSessionId(chat);
            await chat.click('#help');
            await waitUntil(chat, 'the help request to be acknowledged', () =>
                [...document.querySelectorAll('#messages .message[data-role="system"]')].some((m) => /asked to join/.test(m.textContent)));

            await withContext(async (adminContext) => {
                const admin = await open(adminContext, '/admin', adminToken(uniqueUser('admin'), JWT_SECRET));
                await waitForStatus(admin, 'ready');
                assert.equal(await admin.getAttribute('#auto-refresh', 'aria-pressed'), 'true');
                assert.ok((await admin.locator('#metrics .metric').count()) >= 10, 'the metric cards');
                const row = admin.locator(`#sessions tr[data-session-id="${id}"]`);
                // Within the refresh period; "Refresh now" shortens the wait (a few requests only).
                for (let i = 0; i < 4 && !(await row.count()); i++) {
                    await admin.click('#refresh-now');
                    await waitForStatus(admin, 'ready');
                }
                await row.waitFor();
                assert.match(await row.getAttribute('class'), /\bhelp\b/);
                assert.match(await row.textContent(), /needs help/);
                const name = await row.locator('.session-name').textContent();
                assert.ok(name.includes('<img src=x'), `the name (cut by the server) is text: ${name}`);
                assert.equal(await admin.locator('#sessions img').count(), 0);

                // Sorting is a button with aria-sort on its header.
                await admin.click('th[data-sort="message_count"] button');
                await waitUntil(admin, 'aria-sort on Messages', () =>
                    document.querySelector('th[data-sort="message_count"]')?.getAttribute('aria-sort') === 'descending');
                await waitForStatus(admin, 'ready');

                // Take over: history, live socket, a message as support.
                await row.getByRole('button', { name: /Take over/ }).click();
                await waitUntil(admin, 'the assist view to connect', () =>
                    document.querySelector('#assist-status')?.dataset.state === 'connected' && !document.querySelector('#assist').hidden);
                assert.ok((await admin.locator('#assist-messages .message[data-role="user"]').count()) >= 1, 'the history');
                assert.equal(await admin.locator('#assist-messages img').count(), 0);
                await waitUntil(chat, 'admin_join on the user page', () =>
                    [...document.querySelectorAll('#messages .message[data-role="system"]')].some((m) => /joined/.test(m.textContent)));

                await admin.fill('#assist-prompt', 'Hi, this is **support**.');
                await admin.click('#assist-send');
                await waitUntil(chat, 'the admin message on the user page', () =>
                    [...document.querySelectorAll('#messages .message[data-role="admin"]')].some((m) => /this is support/.test(m.textContent)));

                // The user's reply reaches the admin live.
                await chat.fill('#prompt', 'Thanks, human');
                await chat.click('#send');
                await waitUntil(admin, 'the user message on the admin page', () =>
                    [...document.querySelectorAll('#assist-messages .message[data-role="user"]')].some((m) => /Thanks, human/.test(m.textContent)));

                await admin.click('#release');
                await waitUntil(admin, 'the assist view to close', () => document.querySelector('#assist').hidden);
                await waitUntil(chat, 'admin_leave on the user page', () =>
                    [...document.querySelectorAll('#messages .message[data-role="system"]')].some((m) => /left/.test(m.textContent)));

                await chatAndWait(chat, 'Back to the model', 2);
                await assertNotPwned(admin);
                await assertNotPwned(chat);
                clean(admin);
            });
            clean(chat);
        }));

    test("clicking a user id shows that user's sessions", { timeout: TEST_TIMEOUT_MS }, () =>
        withContext(async (context) => {
            const user = uniqueUser('listed');
            const chat = await openChat(context, user);
            await chatAndWait(chat, 'Hello from a listed user', 1);
            const id = await chatSessionId(chat);
            const admin = await open(context, '/admin', adminToken(uniqueUser('admin'), JWT_SECRET));
            await waitForStatus(admin, 'ready');
            await admin.locator(`#sessions tr[data-session-id="${id}"] button.link`).click();
            await waitUntil(admin, "the user's sessions", (u) => document.querySelector('#sessions-title')?.textContent === `Sessions of ${u}`, user);
            await waitForStatus(admin, 'ready');
            const ids = await admin.$$eval('#sessions tr[data-session-id]', (rows) => rows.map((r) => r.dataset.sessionId));
            assert.deepEqual(ids, [id]);
            await admin.click('#back-to-all');
            await waitUntil(admin, 'all sessions', () => document.querySelector('#sessions-title')?.textContent === 'Sessions');
            clean(admin);
        }));

    test('the auto-refresh toggle pauses and resumes', { timeout: TEST_TIMEOUT_MS }, () =>
        withContext(async (context) => {
            const admin = await open(context, '/admin', adminToken(uniqueUser('admin'), JWT_SECRET));
            await waitForStatus(admin, 'ready');
            await admin.click('#auto-refresh');
            assert.equal(await admin.getAttribute('#auto-refresh', 'aria-pressed'), 'false');
            await admin.click('#auto-refresh');
            assert.equal(await admin.getAttribute('#auto-refresh', 'aria-pressed'), 'true');
            // Filters: ended sessions only, applied as a form.
            await admin.selectOption('#f-status', 'ended');
            await admin.click('#filters button[type="submit"]');
            await waitForStatus(admin, 'ready');
            const states = await admin.$$eval('#sessions tr[data-session-id] .badge-active', (b) => b.length);
            assert.equal(states, 0, 'an active session listed under status=ended');
            clean(admin);
        }));
});

describe('admin dashboard under a low rate limit', { timeout: TEST_TIMEOUT_MS }, () => {
    test('a 429 shows Retry-After and the page asks nothing until it has passed', { timeout: TEST_TIMEOUT_MS }, async () => {
        const limited = await startServer({
            providerEndpoint: stack.provider.endpoint,
            extraEnv: { ADMIN_RATE_LIMIT: '3', ADMIN_RATE_WINDOW: '30s' },
        });
        const context = await stack.browser.newContext();
        try {
            const page = await openPage(context);
            const adminCalls = [];
            page.on('request', (request) => {
                if (request.url().includes(`${PREFIX}/admin/`)) adminCalls.push(Date.now());
            });
            const token = adminToken(uniqueUser('admin'), JWT_SECRET);
            await page.goto(`${limited.baseUrl}${PREFIX}/ui/admin?token=${encodeURIComponent(token)}`);
            await waitForStatus(page, 'ready'); // 2 requests
            await page.click('#refresh-now'); // the 3rd passes, the 4th is refused
            await waitForStatus(page, 'limited');
            assert.match(await page.locator('#status').textContent(), /wait\w* \d+ s/);
            const count = adminCalls.length;
            assert.equal(count, 4);
            // More clicks during the back-off send nothing.
            await page.click('#refresh-now');
            await page.click('#refresh-now');
            // A barrier on the same channel: request events arrive in the order the page
            // makes them, so once this later one is seen, any the clicks made were too.
            const barrier = page.waitForRequest((request) => request.url().endsWith(`${PREFIX}/healthz`));
            await page.evaluate((prefix) => fetch(`${prefix}/healthz`), PREFIX);
            await barrier;
            assert.equal(adminCalls.length, count, 'requests were sent during the back-off');
            assert.equal(await page.locator('#status').getAttribute('data-state'), 'limited');
            clean(page, { allowConsole: [/status of 429/] });
        } finally {
            await context.close();
            await limited.stop();
        }
    });
});
