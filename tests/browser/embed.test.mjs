// The chat page embedded in another site's iframe: the embedding page hands the token
// over with postMessage, and the page takes it only from an origin listed in
// CSP_FRAME_ANCESTORS (the same list that lets the site frame it); the same message from
// a site not listed is ignored. Two embedding sites on loopback ports stand for them.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';

import { assertClean, launchBrowser, openPage } from './support/browser.mjs';
import { userToken } from './support/jwt.mjs';
import { startMockProvider } from './support/mock-provider.mjs';
import { JWT_SECRET, PREFIX, PROVIDER_API_KEY, startServer } from './support/server.mjs';

const WAIT_MS = 15000;

/**
 * A site serving one page that frames `chatUrl` and posts `token` to it once loaded; a
 * `legacy` site instead answers the frame's `request_token` with `{type: "token"}`, as
 * the pages embedding the earlier web client do.
 */
async function embeddingSite({ legacy = false } = {}) {
    const site = { chatUrl: '', token: '' };
    const server = createServer((request, response) => {
        const token = JSON.stringify(site.token);
        const hand = legacy
            ? `window.addEventListener('message', (event) => {
    if (event.source === frame.contentWindow && event.data && event.data.type === 'request_token') {
      frame.contentWindow.postMessage({ type: 'token', token: ${token} }, '*');
    }
  });`
            : `frame.addEventListener('load', () => {
    frame.contentWindow.postMessage({ type: 'chatbox-token', token: ${token} }, '*');
  });`;
        response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
        response.end(`<!doctype html><title>site</title>
<iframe id="chat" title="chat" src="${site.chatUrl}" width="600" height="400"></iframe>
<script>
  const frame = document.getElementById('chat');
  ${hand}
</script>`);
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    site.origin = `http://127.0.0.1:${server.address().port}`;
    site.close = () => new Promise((resolve) => server.close(resolve));
    return site;
}

let provider;
let server;
let browser;
let trusted;
let legacy;
let stranger;

before(async () => {
    trusted = await embeddingSite();
    legacy = await embeddingSite({ legacy: true });
    stranger = await embeddingSite();
    provider = await startMockProvider({ apiKey: PROVIDER_API_KEY });
    // Both may frame the page (a framing rule of the test, not of the token): only the
    // first is named as an exact origin, so only it may hand a token over.
    server = await startServer({
        providerEndpoint: provider.endpoint,
        extraEnv: { CSP_FRAME_ANCESTORS: `'self' ${trusted.origin} ${legacy.origin} http://127.0.0.1:*` },
    });
    for (const site of [trusted, legacy, stranger]) {
        site.chatUrl = `${server.baseUrl}${PREFIX}/ui/`;
    }
    browser = await launchBrowser();
});

after(async () => {
    await browser?.close();
    await server?.stop();
    await provider?.close();
    await trusted?.close();
    await legacy?.close();
    await stranger?.close();
});

/** The chat page's frame in `page`, once its status is `state`. */
async function chatFrame(page, state) {
    const handle = await page.waitForSelector('#chat', { timeout: WAIT_MS });
    const frame = await handle.contentFrame();
    await frame.waitForFunction((s) => document.querySelector('#status')?.dataset.state === s, state, {
        timeout: WAIT_MS,
        polling: 50,
    });
    return frame;
}

test('a listed embedding site hands the token over and the chat connects', async () => {
    trusted.token = userToken('embedded-user', JWT_SECRET);
    const context = await browser.newContext();
    try {
        const page = await openPage(context);
        await page.goto(trusted.origin);
        const frame = await chatFrame(page, 'connected');
        const stored = await frame.evaluate(() => sessionStorage.getItem('chatbox.token'));
        assert.equal(stored, trusted.token, 'kept for this tab only');
        assert.equal(await frame.evaluate(() => localStorage.length), 0, 'nothing in localStorage');
        assert.equal(await frame.evaluate(() => document.cookie), '', 'no cookie');
        assertClean(page);
    } finally {
        await context.close();
    }
});

test('a listed site answering the earlier client\'s request_token hands the token over', async () => {
    legacy.token = userToken('legacy-embedded-user', JWT_SECRET);
    const context = await browser.newContext();
    try {
        const page = await openPage(context);
        await page.goto(legacy.origin);
        const frame = await chatFrame(page, 'connected');
        assert.equal(await frame.evaluate(() => sessionStorage.getItem('chatbox.token')), legacy.token);
        assertClean(page);
    } finally {
        await context.close();
    }
});

test('a site not listed cannot hand a token over', async () => {
    stranger.token = userToken('stranger-user', JWT_SECRET);
    const context = await browser.newContext();
    try {
        const page = await openPage(context);
        await page.goto(stranger.origin);
        const frame = await chatFrame(page, 'expired');
        // A barrier: message events reach the page's listeners in the order posted, so once
        // a listener added now has seen a second message from the site, the page's own
        // listener has handled the first one too.
        const seen = frame.evaluate(
            () => new Promise((resolve) => window.addEventListener('message', () => resolve(), { once: true })),
        );
        await page.evaluate((token) => {
            document.getElementById('chat').contentWindow.postMessage({ type: 'chatbox-token', token }, '*');
        }, stranger.token);
        await seen;
        assert.equal(await frame.evaluate(() => sessionStorage.getItem('chatbox.token')), null);
        assert.equal(await frame.evaluate(() => document.querySelector('#status').dataset.state), 'expired');
    } finally {
        await context.close();
    }
});
