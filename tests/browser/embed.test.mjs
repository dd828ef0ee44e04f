// The chat page embedded in another site's iframe: the embedding page hands the token
// over with postMessage, and the page takes it only from an origin listed in
// CSP_FRAME_ANCESTORS (the same list that lets the site frame it); the same message from
// a site not listed is ignored. Two embedding sites on loopback ports stand for them.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, test } from 'node:test';

import { assertClean, openPage } from './support/browser.mjs';
import { WAIT_MS, suite, waitForStatus } from './support/harness.mjs';
import { userToken } from './support/jwt.mjs';
import { JWT_SECRET, PREFIX } from './support/server.mjs';

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

let trusted;
let legacy;
let stranger;

const stack = suite({
    // The embedding sites first: the server's framing rule names them. Both may frame the
    // page (a framing rule of the test, not of the token): only the first is named as an
    // exact origin, so only it may hand a token over.
    extraEnv: async () => {
        trusted = await embeddingSite();
        legacy = await embeddingSite({ legacy: true });
        stranger = await embeddingSite();
        return { CSP_FRAME_ANCESTORS: `'self' ${trusted.origin} ${legacy.origin} http://127.0.0.1:*` };
    },
});

after(async () => {
    await trusted?.close();
    await legacy?.close();
    await stranger?.close();
});

/**
 * Opens `site` in a new page of `context` and returns the page and the chat page's frame
 * in it, once its status is `state`.
 */
async function openSite(context, site, state) {
    site.chatUrl = `${stack.server.baseUrl}${PREFIX}/ui/`;
    const page = await openPage(context);
    await page.goto(site.origin);
    const handle = await page.waitForSelector('#chat', { timeout: WAIT_MS });
    const frame = await handle.contentFrame();
    await waitForStatus(frame, state);
    return { page, frame };
}

test('a listed embedding site hands the token over and the chat connects', async () => {
    trusted.token = userToken('embedded-user', JWT_SECRET);
    await stack.withContext(async (context) => {
        const { page, frame } = await openSite(context, trusted, 'connected');
        const stored = await frame.evaluate(() => sessionStorage.getItem('chatbox.token'));
        assert.equal(stored, trusted.token, 'kept for this tab only');
        assert.equal(await frame.evaluate(() => localStorage.length), 0, 'nothing in localStorage');
        assert.equal(await frame.evaluate(() => document.cookie), '', 'no cookie');
        assertClean(page);
    });
});

test('a listed site answering the earlier client\'s request_token hands the token over', async () => {
    legacy.token = userToken('legacy-embedded-user', JWT_SECRET);
    await stack.withContext(async (context) => {
        const { page, frame } = await openSite(context, legacy, 'connected');
        assert.equal(await frame.evaluate(() => sessionStorage.getItem('chatbox.token')), legacy.token);
        assertClean(page);
    });
});

test('a site not listed cannot hand a token over', async () => {
    stranger.token = userToken('stranger-user', JWT_SECRET);
    await stack.withContext(async (context) => {
        const { page, frame } = await openSite(context, stranger, 'expired');
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
    });
});
