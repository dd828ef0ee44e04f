// What the browser test files (and screenshots.mjs) share: starting and stopping the mock
// provider, the server binary and headless Chromium (`startStack`/`stopStack`, or `suite()`
// which does it in a file's `before`/`after`), describing what a page shows for failure
// messages (`snapshot`, the token redacted), waiting for a DOM state with a deadline and a
// message saying what did not happen (`waitUntil`, `waitForStatus`, `waitForAnswers`), and
// opening a page of the UI with a token (`openUi`, `openChat`), which also checks that the
// page answered 200 and removed the token from the address bar.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';

import { launchBrowser, openPage } from './browser.mjs';
import { userToken } from './jwt.mjs';
import { startMockProvider } from './mock-provider.mjs';
import { JWT_SECRET, PREFIX, PROVIDER_API_KEY, startServer } from './server.mjs';

/** How long a wait for a page state lasts by default. */
export const WAIT_MS = 15000;

/**
 * Starts the mock provider, the server (with `extraEnv`, an object or a function returning
 * one or a promise of one, called once the provider runs) and Chromium, filling in `stack.provider`,
 * `stack.server` and `stack.browser` as each is up, so `stopStack` stops what started.
 */
export async function startStack(stack = {}, { extraEnv } = {}) {
    stack.provider = await startMockProvider({ apiKey: PROVIDER_API_KEY });
    const env = typeof extraEnv === 'function' ? await extraEnv() : extraEnv;
    stack.server = await startServer({ providerEndpoint: stack.provider.endpoint, ...(env ? { extraEnv: env } : {}) });
    stack.browser = await launchBrowser();
    return stack;
}

/** Stops whatever `startStack` started: browser, server, provider. */
export async function stopStack(stack) {
    await stack.browser?.close();
    await stack.server?.stop();
    await stack.provider?.close();
}

/**
 * One provider, server and browser for the whole test file: started in `before`, stopped in
 * `after`. Returns the stack (`provider`, `server`, `browser`, set once `before` ran) with
 * helpers bound to it: `withContext([options,] body)`, `open(context, path, token, options)`
 * and `openChat(context, user, options)`.
 */
export function suite(options = {}) {
    const stack = {};
    before(() => startStack(stack, options));
    after(() => stopStack(stack));
    stack.withContext = (first, second) =>
        typeof first === 'function' ? withContext(stack.browser, {}, first) : withContext(stack.browser, first, second);
    stack.open = (context, path, token, openOptions) => openUi(stack.server, context, path, token, openOptions);
    stack.openChat = (context, user, openOptions) => openChat(stack.server, context, user, openOptions);
    return stack;
}

/** A fresh context of `browser` (with `options`) for `body`, closed afterwards whatever happens. */
export async function withContext(browser, options, body) {
    const context = await browser.newContext(options);
    try {
        return await body(context);
    } finally {
        await context.close();
    }
}

let users = 0;
/** A user id no other test of this process uses. */
export function uniqueUser(what) {
    users += 1;
    return `${what}-${process.pid}-${users}`;
}

/** What the page (or frame) shows, for failure messages and assertions (the token redacted). */
export async function snapshot(page) {
    try {
        return await page.evaluate(() => {
            const status = document.querySelector('#status');
            const active = document.activeElement;
            return {
                url: location.href.replace(/token=[^&#]*/g, 'token=REDACTED'),
                status: status?.dataset.state ?? null,
                statusText: status?.textContent ?? null,
                statusHistory: window.__statusHistory ?? null,
                active: active ? `${active.tagName}#${active.id}` : null,
                sessionId: document.querySelector('#messages')?.dataset.sessionId ?? null,
                messages: [...document.querySelectorAll('#messages .message')].map((m) => ({
                    role: m.dataset.role ?? null,
                    seq: m.dataset.seq ?? null,
                    id: m.dataset.messageId ?? null,
                    streaming: m.dataset.streaming ?? null,
                    text: (m.querySelector('.content') ?? m).textContent.replace(/\s+/g, ' ').trim().slice(0, 400),
                })),
                body: document.body.innerText.slice(0, 1500),
            };
        });
    } catch (error) {
        return { unavailable: String(error) };
    }
}

/** Waits until `predicate(arg)` holds in the page, or fails saying `what` and what the page shows. */
export async function waitUntil(page, what, predicate, arg, timeout = WAIT_MS) {
    try {
        await page.waitForFunction(predicate, arg, { timeout, polling: 50 });
    } catch (error) {
        throw new Error(
            `timed out after ${timeout} ms waiting for ${what}\n` +
                `page: ${JSON.stringify(await snapshot(page), null, 1)}\n` +
                `problems: ${JSON.stringify(page.problems, null, 1)}\n(${error.message.split('\n')[0]})`,
        );
    }
}

/** Waits until #status[data-state] is `state`. */
export function waitForStatus(page, state, timeout = WAIT_MS) {
    return waitUntil(
        page,
        `#status[data-state="${state}"]`,
        (s) => document.querySelector('#status')?.dataset.state === s,
        state,
        timeout,
    );
}

/** Waits until the page shows `count` AI messages and none of them streams. */
export function waitForAnswers(page, count, timeout = WAIT_MS) {
    return waitUntil(
        page,
        `${count} finished AI message(s) (data-streaming="false")`,
        (n) => {
            const ai = [...document.querySelectorAll('#messages .message[data-role="ai"]')];
            return ai.length >= n && ai.every((m) => m.dataset.streaming === 'false');
        },
        count,
        timeout,
    );
}

/** Sends `text` on the chat page and waits for its answer (the `answers`-th AI message, finished). */
export async function chatAndWait(page, text, answers) {
    await page.fill('#prompt', text);
    await page.click('#send');
    await waitForAnswers(page, answers);
}

/** Waits until the last AI message shows rendered Markdown: a list, a code block and a table. */
export function waitForMarkdownAnswer(page) {
    return waitUntil(page, 'the answer rendered as Markdown (li, pre code, table)', () => {
        const content = [...document.querySelectorAll('#messages .message[data-role="ai"] .content')].at(-1);
        return !!content?.querySelector('li') && !!content.querySelector('pre code') && !!content.querySelector('table');
    });
}

/**
 * Opens `path` (under P/ui) of `server` with `token` (if any) and the parameters `query`
 * in a new page of `context` (`initScript` runs in its every document); fails unless the
 * page answered 200 and removed the token from the address bar.
 */
export async function openUi(server, context, path, token, { query = {}, initScript } = {}) {
    const page = await openPage(context);
    if (initScript) await page.addInitScript(initScript);
    const params = new URLSearchParams();
    if (token) params.set('token', token);
    for (const [name, value] of Object.entries(query)) params.set(name, value);
    const separator = path.includes('?') ? '&' : '?';
    const response = await page.goto(`${server.baseUrl}${PREFIX}/ui${path}${params.size ? `${separator}${params}` : ''}`);
    assert.equal(response?.status(), 200, `GET ${path} answered ${response?.status()}`);
    assert.ok(!page.url().includes('token='), 'the address bar still carries the token');
    return page;
}

/**
 * The chat page as `user` (with `token`, by default a user token minted for `user`;
 * optionally on `session`, as ?`sessionParam`=), connected.
 */
export async function openChat(
    server,
    context,
    user,
    { token = userToken(user, JWT_SECRET), session, sessionParam = 'session', initScript } = {},
) {
    const query = session ? { [sessionParam]: session } : {};
    const page = await openUi(server, context, '/', token, { query, initScript });
    await waitForStatus(page, 'connected');
    return page;
}
