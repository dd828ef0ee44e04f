// Writes the documentation's screenshots of the web UI to docs/img/ (a script, not a test):
//   chat-light.png, chat-dark.png  the chat page, desktop 1200x800, a short conversation
//                                  with a Markdown answer (list, code block, table)
//   chat-phone.png                 the same on a phone-sized viewport (390x844, dark)
//   sessions-light.png             the conversations page listing conversations
//   admin-light.png, admin-dark.png the admin dashboard with a help request highlighted and
//                                  one session assisted by an admin
//
// Usage: node tests/browser/screenshots.mjs   (CHATBOX_BIN and CHROMIUM as for the tests)
//
// It starts the server binary and the mock provider exactly as the browser tests do
// (support/), drives headless Chromium, and waits for DOM states (never fixed sleeps), each
// wait with a deadline and a message saying what did not happen. Only the viewport is
// captured (CSS pixels, `scale: 'css'`), caret and animations off; the pages remove ?token
// from the address bar, which the script checks, and the token is never part of the page.

import { mkdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';

import {
    chatAndWait,
    openChat as openChatOf,
    openUi,
    startStack,
    stopStack,
    waitForMarkdownAnswer,
    waitForStatus,
    waitUntil,
} from './support/harness.mjs';
import { adminToken, userToken } from './support/jwt.mjs';
import { JWT_SECRET, REPO_ROOT } from './support/server.mjs';

const OUT_DIR = resolve(REPO_ROOT, 'docs/img');
const DESKTOP = { width: 1200, height: 800 };
const PHONE = { width: 390, height: 844 };
const MAX_BYTES = 300 * 1024;

const stack = {};
const tokens = new Set();

function newContext(colorScheme, viewport = DESKTOP) {
    return stack.browser.newContext({ colorScheme, viewport, deviceScaleFactor: 1, locale: 'en-GB', timezoneId: 'UTC' });
}

/** Opens `path` (under P/ui) with `token` in a new page of `context`. */
function open(context, path, token) {
    tokens.add(token);
    return openUi(stack.server, context, path, token);
}

/** The chat page as `user`, connected. */
function openChat(context, user) {
    const token = userToken(user, JWT_SECRET);
    tokens.add(token);
    return openChatOf(stack.server, context, user, { token });
}

/** A chat page of `user` showing one question and the mock's Markdown answer. */
async function conversation(context, user) {
    const chat = await openChat(context, user);
    await chatAndWait(chat, 'How do I print something in JavaScript? A short list, code and a table, please.', 1);
    await waitForMarkdownAnswer(chat);
    return chat;
}

async function askForHelp(chat) {
    await waitUntil(chat, '#help to be enabled', () => document.querySelector('#help')?.disabled === false);
    await chat.click('#help');
    await waitUntil(chat, 'the help request to be acknowledged', () =>
        [...document.querySelectorAll('#messages .message[data-role="system"]')].some((m) => /asked to join/.test(m.textContent)));
}

function sessionId(page) {
    return page.evaluate(() => document.querySelector('#messages')?.dataset.sessionId);
}

/** Clicks "Refresh now" until `predicate(arg)` holds on the admin page (at most `tries` times). */
async function refreshUntil(admin, what, predicate, arg, tries = 6) {
    for (let i = 0; i < tries; i++) {
        if (await admin.evaluate(predicate, arg)) return;
        await admin.click('#refresh-now');
        await waitForStatus(admin, 'ready');
    }
    await waitUntil(admin, what, predicate, arg);
}

/** Writes the viewport of `page` to docs/img/`name`, after checking no token is visible. */
async function shoot(page, name) {
    const url = page.url();
    if (url.includes('token=')) throw new Error(`${name}: the address still carries the token`);
    const text = await page.evaluate(() => document.documentElement.innerText);
    for (const token of tokens) {
        if (text.includes(token)) throw new Error(`${name}: a token is visible in the page`);
    }
    // Steady state: no focus ring on the last clicked control, the page scrolled as it is.
    await page.evaluate(() => document.activeElement?.blur());
    const path = resolve(OUT_DIR, name);
    await page.screenshot({ path, fullPage: false, scale: 'css', caret: 'hide', animations: 'disabled' });
    const bytes = statSync(path).size;
    console.log(`${path} ${bytes} bytes${bytes > MAX_BYTES ? ' (over 300 KB: reduce the viewport)' : ''}`);
}

async function main() {
    mkdirSync(OUT_DIR, { recursive: true });
    await startStack(stack);

    // Chat page: desktop light and dark, phone dark.
    for (const [scheme, viewport, name, user] of [
        ['light', DESKTOP, 'chat-light.png', 'grace'],
        ['dark', DESKTOP, 'chat-dark.png', 'linus'],
        ['dark', PHONE, 'chat-phone.png', 'margaret'],
    ]) {
        const context = await newContext(scheme, viewport);
        try {
            const chat = await conversation(context, user);
            await shoot(chat, name);
        } finally {
            await context.close();
        }
    }

    // Conversations page: the user "grace" has her conversation from above; a second one.
    {
        const context = await newContext('light');
        try {
            const chat = await openChat(context, 'grace');
            // Whether the page reopened her conversation or started a new one, one more answer.
            const before = await chat.locator('#messages .message[data-role="ai"]').count();
            await chatAndWait(chat, 'Summarise our release notes', before + 1);
            const page = await open(context, '/sessions', userToken('grace', JWT_SECRET));
            await waitForStatus(page, 'ready');
            await waitUntil(page, 'a listed conversation', () => document.querySelectorAll('#sessions li.session').length >= 1);
            await shoot(page, 'sessions-light.png');
        } finally {
            await context.close();
        }
    }

    // Admin dashboard: "alan" asks for help (highlighted); "barbara" asks for help and an
    // admin, in another context, takes her conversation over and stays (assisted).
    const users = await newContext('light');
    const helper = await newContext('light');
    try {
        const alan = await conversation(users, 'alan');
        await askForHelp(alan);
        const alanId = await sessionId(alan);
        const barbaraContext = await newContext('light');
        const barbara = await conversation(barbaraContext, 'barbara');
        await askForHelp(barbara);
        const barbaraId = await sessionId(barbara);

        const assisting = await open(helper, '/admin', adminToken('hopper', JWT_SECRET));
        await waitForStatus(assisting, 'ready');
        await refreshUntil(assisting, `the row of session ${barbaraId}`, (id) => !!document.querySelector(`#sessions tr[data-session-id="${id}"]`), barbaraId);
        await assisting.locator(`#sessions tr[data-session-id="${barbaraId}"]`).getByRole('button', { name: /Take over/ }).click();
        await waitUntil(assisting, 'the assist view to connect', () =>
            document.querySelector('#assist-status')?.dataset.state === 'connected' && !document.querySelector('#assist').hidden);
        await waitUntil(barbara, 'admin_join on the user page', () =>
            [...document.querySelectorAll('#messages .message[data-role="system"]')].some((m) => /joined/.test(m.textContent)));

        for (const [scheme, name] of [['light', 'admin-light.png'], ['dark', 'admin-dark.png']]) {
            const context = await newContext(scheme);
            try {
                const admin = await open(context, '/admin', adminToken('lovelace', JWT_SECRET));
                await waitForStatus(admin, 'ready');
                await refreshUntil(
                    admin,
                    'a highlighted help request and an assisted session',
                    ([help, assisted]) =>
                        !!document.querySelector(`#sessions tr.help[data-session-id="${help}"]`) &&
                        /assisted/.test(document.querySelector(`#sessions tr[data-session-id="${assisted}"]`)?.textContent ?? ''),
                    [alanId, barbaraId],
                );
                // The table in view, under the metrics.
                await admin.evaluate(() => {
                    const panel = document.querySelector('#sessions-title')?.closest('section');
                    if (panel) window.scrollTo(0, panel.getBoundingClientRect().top + window.scrollY - 8);
                });
                await shoot(admin, name);
            } finally {
                await context.close();
            }
        }
        await barbaraContext.close();
    } finally {
        await helper.close();
        await users.close();
    }
}

try {
    await main();
} catch (error) {
    console.error(`screenshots: FAILED: ${error.stack || error}`);
    process.exitCode = 1;
} finally {
    await stopStack(stack);
}
