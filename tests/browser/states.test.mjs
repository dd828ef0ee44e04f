// The chat page's clear states, each caused for real against the server: rate-limited
// (with the wait the server gives), the conversation ended (from the conversations API,
// as from another device), and the token expired while connected (the server's
// TOKEN_EXPIRED and close 1008). The server runs with a message budget of two and no
// JWT leeway, so both happen within a test.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { assertClean } from './support/browser.mjs';
import { chatAndWait, suite, waitForStatus } from './support/harness.mjs';
import { sign, userToken } from './support/jwt.mjs';
import { JWT_SECRET, PREFIX } from './support/server.mjs';

const stack = suite({ extraEnv: { RATE_LIMIT: '2', RATE_WINDOW: '1m', JWT_LEEWAY: '0s' } });

/**
 * The chat page with `token` in a new context, connected; the page's clock is Playwright's
 * (it runs as time does, and a test may move it on), and the page counts the sockets it
 * opens (`window.__socketsOpened`).
 */
async function open(token) {
    const context = await stack.browser.newContext();
    await context.clock.install();
    await context.addInitScript(() => {
        const Native = window.WebSocket;
        window.__socketsOpened = 0;
        window.WebSocket = class extends Native {
            constructor(...args) {
                super(...args);
                window.__socketsOpened += 1;
            }
        };
    });
    const page = await stack.open(context, '/', token);
    await waitForStatus(page, 'connected');
    return page;
}

test('over the message budget the page says so, with the wait', async () => {
    const page = await open(userToken('ivy-limited', JWT_SECRET));
    await chatAndWait(page, 'one', 1);
    await chatAndWait(page, 'two', 2);
    await page.fill('#prompt', 'three');
    await page.click('#send');
    await waitForStatus(page, 'limited');
    const text = await page.textContent('#status');
    assert.match(text, /wait \d+ s/, text);
    assertClean(page);
    await page.context().close();
});

test('a conversation ended elsewhere shows as ended', async () => {
    const token = userToken('jon-ended', JWT_SECRET);
    const page = await open(token);
    await chatAndWait(page, 'hello', 1);
    const session = await page.$eval('#messages', (m) => m.dataset.sessionId);
    const reply = await fetch(`${stack.server.baseUrl}${PREFIX}/sessions/${encodeURIComponent(session)}/end`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}` },
    });
    assert.equal(reply.status, 200);
    await waitForStatus(page, 'ended');
    assertClean(page);
    await page.context().close();
});

test('a token that expires while connected shows as expired, and the page stops reconnecting', async () => {
    const expiresIn = 4;
    const token = sign({ user_id: 'kim-expired', exp: Math.floor(Date.now() / 1000) + expiresIn }, JWT_SECRET);
    const page = await open(token);
    await waitForStatus(page, 'expired');
    const text = await page.textContent('#status');
    assert.match(text, /expired/i, text);
    // Expired is final: however long passes (past the 30 s cap of the reconnect backoff),
    // no socket is opened again.
    assert.equal(await page.evaluate(() => window.__socketsOpened), 1);
    await page.clock.runFor(60_000);
    assert.equal(await page.evaluate(() => window.__socketsOpened), 1, 'the page reconnected with an expired token');
    assertClean(page, { allowConsole: [/WebSocket/i] });
    await page.context().close();
});
