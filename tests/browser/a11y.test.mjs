// Accessibility checks of the three pages (chat, conversations, admin) with axe-core, in
// headless Chromium against the real server binary and the mock provider (support/).
//
// Every page is checked in its meaningful states — the chat page connected with a streamed
// Markdown answer (list, code block, table: the mock's default answer), the conversations
// page listing a conversation, the shared read-only view, the admin dashboard with its table
// loaded (a help request in it) and with the assist view open — once in the light and once
// in the dark colour scheme (contrast differs). axe runs the WCAG 2.0/2.1 A and AA rules; a
// violation of impact "serious" or "critical" fails the test, with its rule id, impact and
// the offending nodes' targets; lesser ones are printed as diagnostics only.
// A keyboard test checks that Tab reaches #prompt on the chat page with a visible focus
// outline (:focus-visible) and that typing and Enter sends and brings an answer.
//
// How axe gets into the page: its source (node_modules/axe-core/axe.min.js) is evaluated
// with `page.evaluate`, which Playwright runs through the DevTools protocol; that evaluation
// is not subject to the page's Content-Security-Policy (script-src 'self'), so no <script>
// element is inserted and the policy stays fully in force. `bypassCSP: true` was not used
// because it would switch the policy off for the whole context: the pages would then be
// checked under conditions they never run in, and a CSP regression (an inline script or
// style the pages started to need) would go unnoticed here. Each page is also asserted
// clean (no console error, no exception, no CSP violation) after axe has run.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';

import { assertClean, openPage } from './support/browser.mjs';
import { WAIT_MS, chatAndWait, snapshot, suite, uniqueUser, waitForAnswers, waitForMarkdownAnswer, waitForStatus, waitUntil } from './support/harness.mjs';
import { adminToken, userToken } from './support/jwt.mjs';
import { JWT_SECRET } from './support/server.mjs';

const TEST_TIMEOUT_MS = 60000;
const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
const FAILING_IMPACTS = new Set(['serious', 'critical']);
const SCHEMES = ['light', 'dark'];
const MAX_TABS = 25;

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const stack = suite();
const { open, openChat } = stack;

// ---------------------------------------------------------------------------------------
// Helpers

/** A fresh context in `colorScheme` for `body`, closed afterwards whatever happens. */
function withContext(colorScheme, body) {
    return stack.withContext({ colorScheme, viewport: { width: 1200, height: 800 } }, body);
}

/** The chat page of `user` with one answered question; returns the page and its session id. */
async function chatWithAnswer(context, user) {
    const chat = await openChat(context, user);
    await chatAndWait(chat, 'Show me a list, some code and a table', 1);
    // The default answer rendered as Markdown: the check covers list, code and table markup.
    await waitForMarkdownAnswer(chat);
    const id = await chat.evaluate(() => document.querySelector('#messages')?.dataset.sessionId);
    assert.ok(id, 'the chat page shows its session id');
    return { chat, id };
}

/** Runs axe (WCAG 2 A/AA) on `page`; returns its violations. */
async function runAxe(page) {
    if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
        await page.evaluate(AXE_SOURCE);
    }
    return page.evaluate(async (tags) => {
        const results = await window.axe.run(document, {
            runOnly: { type: 'tag', values: tags },
            resultTypes: ['violations'],
        });
        return results.violations.map((v) => ({
            id: v.id,
            impact: v.impact,
            help: v.help,
            helpUrl: v.helpUrl,
            nodes: v.nodes.map((n) => ({
                target: n.target.map(String).join(' '),
                html: n.html.slice(0, 200),
                summary: (n.failureSummary ?? '').replace(/\s+/g, ' ').trim().slice(0, 400),
            })),
        }));
    }, AXE_TAGS);
}

function formatViolations(violations) {
    return violations
        .map(
            (v) =>
                `  [${v.impact}] ${v.id}: ${v.help} (${v.helpUrl})\n` +
                v.nodes.map((n) => `      ${n.target}\n        ${n.html}\n        ${n.summary}`).join('\n'),
        )
        .join('\n');
}

/**
 * Runs axe on `page` as `label`; fails on serious or critical violations, reports the others
 * as diagnostics of test `t`.
 */
async function checkAxe(t, page, label) {
    const violations = await runAxe(page);
    const failing = violations.filter((v) => FAILING_IMPACTS.has(v.impact));
    const minor = violations.filter((v) => !FAILING_IMPACTS.has(v.impact));
    if (minor.length) t.diagnostic(`${label}: minor/moderate axe findings (not failing):\n${formatViolations(minor)}`);
    assert.equal(
        failing.length,
        0,
        `${label}: ${failing.length} serious/critical accessibility violation(s):\n${formatViolations(failing)}`,
    );
}

/** Requests help on the chat page and waits for the acknowledgement. */
async function askForHelp(chat) {
    await waitUntil(chat, '#help to be enabled', () => document.querySelector('#help')?.disabled === false);
    await chat.click('#help');
    await waitUntil(chat, 'the help request to be acknowledged', () =>
        [...document.querySelectorAll('#messages .message[data-role="system"]')].some((m) => /asked to join/.test(m.textContent)));
}

/** Waits until the admin table lists `id` ("Refresh now" shortens the auto-refresh period). */
async function waitForAdminRow(admin, id) {
    const row = admin.locator(`#sessions tr[data-session-id="${id}"]`);
    for (let i = 0; i < 5 && !(await row.count()); i++) {
        await admin.click('#refresh-now');
        await waitForStatus(admin, 'ready');
    }
    await row.waitFor({ timeout: WAIT_MS }).catch(async (error) => {
        throw new Error(`the admin table does not list session ${id}: ${error.message.split('\n')[0]}\n` +
            `page: ${JSON.stringify(await snapshot(admin), null, 1)}`);
    });
    return row;
}

// ---------------------------------------------------------------------------------------

for (const scheme of SCHEMES) {
    describe(`axe, ${scheme} colour scheme`, { timeout: TEST_TIMEOUT_MS * 4 }, () => {
        test('chat page, connected, with a streamed Markdown answer', { timeout: TEST_TIMEOUT_MS }, (t) =>
            withContext(scheme, async (context) => {
                const { chat } = await chatWithAnswer(context, uniqueUser(`a11y-chat-${scheme}`));
                await checkAxe(t, chat, `chat page (${scheme})`);
                assertClean(chat);
            }));

        test('conversations page with a conversation, and the shared read-only view', { timeout: TEST_TIMEOUT_MS }, (t) =>
            withContext(scheme, async (context) => {
                const user = uniqueUser(`a11y-sessions-${scheme}`);
                const { id } = await chatWithAnswer(context, user);

                const page = await open(context, '/sessions', userToken(user, JWT_SECRET));
                await waitForStatus(page, 'ready');
                const row = page.locator(`#sessions li.session[data-session-id="${id}"]`);
                assert.equal(await row.count(), 1, 'the conversation is listed');
                await checkAxe(t, page, `conversations page (${scheme})`);

                // Shared: the link, then the read-only view as an anonymous visitor.
                await row.getByRole('button', { name: /Create a share link/ }).click();
                await row.locator('.share-url').waitFor({ timeout: WAIT_MS });
                await checkAxe(t, page, `conversations page with a share link (${scheme})`);
                const url = await row.locator('.share-url').inputValue();
                assertClean(page);

                const shared = await openPage(context);
                const response = await shared.goto(url);
                assert.equal(response?.status(), 200, `GET the shared link answered ${response?.status()}`);
                await waitForStatus(shared, 'ready');
                await waitUntil(shared, 'the shared transcript (a user and an AI message)', () =>
                    document.querySelectorAll('#shared-view .message[data-role="ai"] .content li').length > 0);
                await checkAxe(t, shared, `shared read-only view (${scheme})`);
                assertClean(shared);
            }));

        test('admin dashboard with the table loaded, then the assist view open', { timeout: TEST_TIMEOUT_MS }, (t) =>
            withContext(scheme, async (userContext) => {
                const { chat, id } = await chatWithAnswer(userContext, uniqueUser(`a11y-helpee-${scheme}`));
                await askForHelp(chat);

                await withContext(scheme, async (adminContext) => {
                    const admin = await open(adminContext, '/admin', adminToken(uniqueUser('a11y-admin'), JWT_SECRET));
                    await waitForStatus(admin, 'ready');
                    const row = await waitForAdminRow(admin, id);
                    assert.match((await row.getAttribute('class')) ?? '', /\bhelp\b/, 'the help request is highlighted');
                    await checkAxe(t, admin, `admin dashboard (${scheme})`);

                    await row.getByRole('button', { name: /Take over/ }).click();
                    await waitUntil(admin, 'the assist view to connect', () =>
                        document.querySelector('#assist-status')?.dataset.state === 'connected' && !document.querySelector('#assist').hidden);
                    await waitUntil(admin, 'the assisted history', () =>
                        document.querySelectorAll('#assist-messages .message[data-role="ai"]').length > 0);
                    await checkAxe(t, admin, `admin dashboard, assist view open (${scheme})`);
                    assertClean(admin);
                });
                assertClean(chat);
            }));
    });
}

describe('keyboard', { timeout: TEST_TIMEOUT_MS }, () => {
    test('Tab reaches #prompt with a visible focus; typing and Enter sends', { timeout: TEST_TIMEOUT_MS }, () =>
        withContext('light', async (context) => {
            const chat = await openChat(context, uniqueUser('a11y-keyboard'));
            // Start from the top of the document, whatever the page focused on load.
            await chat.evaluate(() => document.activeElement?.blur());
            const visited = [];
            for (let i = 0; i < MAX_TABS; i++) {
                await chat.keyboard.press('Tab');
                const focused = await chat.evaluate(() => {
                    const el = document.activeElement;
                    if (!el || el === document.body) return null;
                    const style = getComputedStyle(el);
                    return {
                        id: el.id,
                        what: `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}`,
                        focusVisible: el.matches(':focus-visible'),
                        outlineStyle: style.outlineStyle,
                        outlineWidth: style.outlineWidth,
                    };
                });
                if (focused) visited.push(focused);
                if (focused?.id === 'prompt') break;
            }
            const path = visited.map((f) => f.what).join(' -> ');
            assert.equal(visited.at(-1)?.id, 'prompt', `Tab did not reach #prompt within ${MAX_TABS} presses: ${path}`);
            // Every control Tab went through, #prompt included, shows its focus.
            for (const f of visited) {
                assert.ok(f.focusVisible, `${f.what} reached by Tab does not match :focus-visible (path: ${path})`);
                assert.notEqual(f.outlineStyle, 'none', `${f.what} has no focus outline (outline-style: none; path: ${path})`);
                assert.notEqual(f.outlineWidth, '0px', `${f.what} has a zero-width focus outline (path: ${path})`);
            }

            await chat.keyboard.type('Hello from the keyboard');
            await chat.keyboard.press('Enter');
            await waitUntil(chat, 'the typed message to show as a user message', () =>
                [...document.querySelectorAll('#messages .message[data-role="user"]')].some((m) => /Hello from the keyboard/.test(m.textContent)));
            await waitForAnswers(chat, 1);
            assert.equal(await chat.inputValue('#prompt'), '', 'the prompt was not emptied after Enter');
            assertClean(chat);
        }));
});
