// The chat page's clear states, each caused for real against the server: rate-limited
// (with the wait the server gives), the conversation ended (from the conversations API,
// as from another device), and the token expired while connected (the server's
// TOKEN_EXPIRED and close 1008). The server runs with a message budget of two and no
// JWT leeway, so both happen within a test.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { assertClean, launchBrowser, openPage } from './support/browser.mjs';
import { sign, userToken } from './support/jwt.mjs';
import { startMockProvider } from './support/mock-provider.mjs';
import { JWT_SECRET, PREFIX, PROVIDER_API_KEY, startServer } from './support/server.mjs';

const WAIT_MS = 15000;

let provider;
let server;
let browser;

before(async () => {
    provider = await startMockProvider({ apiKey: PROVIDER_API_KEY });
    server = await startServer({
        providerEndpoint: provider.endpoint,
        extraEnv: { RATE_LIMIT: '2', RATE_WINDOW: '1m', JWT_LEEWAY: '0s' },
    });
    browser = await launchBrowser();
});

after(async () => {
    await browser?.close();
    await server?.stop();
    await provider?.close();
});

async function open(token) {
    const context = await browser.newContext();
    const page = await openPage(context);
    await page.goto(`${server.baseUrl}${PREFIX}/ui/?token=${encodeURIComponent(token)}`);
    await waitForState(page, 'connected');
    return page;
}

async function waitForState(page, state) {
    try {
        await page.waitForFunction((s) => document.querySelector('#status')?.dataset.state === s, state, {
            timeout: WAIT_MS,
            polling: 50,
        });
    } catch (error) {
        const shown = await page.$eval('#status', (s) => `${s.dataset.state}: ${s.textContent}`).catch(String);
        throw new Error(`#status never became ${state} (it shows ${shown}): ${error.message.split('\n')[0]}`);
    }
}

async function sendAndWaitForAnswer(page, text, answers) {
    await page.fill('#prompt', text);
    await page.click('#send');
    await page.waitForFunction(
        (n) => document.querySelectorAll('.message[data-role="ai"][data-streaming="false"]').length >= n,
        answers,
        { timeout: WAIT_MS },
    );
}

test('over the message budget the page says so, with the wait', async () => {
    const page = await open(userToken('ivy-limited', JWT_SECRET));
    await sendAndWaitForAnswer(page, 'one', 1);
    await sendAndWaitForAnswer(page, 'two', 2);
    await page.fill('#prompt', 'three');
    await page.click('#send');
    await waitForState(page, 'limited');
    const text = await page.textContent('#status');
    assert.match(text, /wait \d+ s/, text);
    assertClean(page);
    await page.context().close();
});

test('a conversation ended elsewhere shows as ended', async () => {
    const token = userToken('jon-ended', JWT_SECRET);
    const page = await open(token);
    await sendAndWaitForAnswer(page, 'hello', 1);
    const session = await page.$eval('#messages', (m) => m.dataset.sessionId);
    const reply = await fetch(`${server.baseUrl}${PREFIX}/sessions/${encodeURIComponent(session)}/end`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}` },
    });
    assert.equal(reply.status, 200);
    await waitForState(page, 'ended');
    assertClean(page);
    await page.context().close();
});

test('a token that expires while connected shows as expired, and the page stops reconnecting', async () => {
    const expiresIn = 4;
    const token = sign({ user_id: 'kim-expired', exp: Math.floor(Date.now() / 1000) + expiresIn }, JWT_SECRET);
    const page = await open(token);
    await waitForState(page, 'expired');
    const text = await page.textContent('#status');
    assert.match(text, /expired/i, text);
    // Expired is final: no socket is opened again afterwards.
    const sockets = [];
    page.on('websocket', (socket) => sockets.push(socket.url()));
    await page.evaluate(() => new Promise((resolve) => setTimeout(resolve, 1500)));
    assert.deepEqual(sockets, [], 'the page kept reconnecting with an expired token');
    assertClean(page, { allowConsole: [/WebSocket/i] });
    await page.context().close();
});
