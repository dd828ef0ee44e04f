// Attachments on the chat page (adapters/http/ui/chat.js), in headless Chromium against
// the real server binary (uploads stored under a temporary UPLOAD_DIR). Run with
// scripts/browser-tests.sh (or `node --test tests/browser/attach.test.mjs`).
//
// The page's DOM contract these tests rely on (besides chat.test.mjs's):
//   #attach (button, labelled) opens #attach-file (a hidden <input type=file>); the chosen
//   file is POSTed to P/uploads, then sent as a `file_upload` frame with #prompt's text as
//   its caption; #attach-status (role=status) says it is uploading; #attach-error
//   (role=alert) shows the server's `error` when the upload is refused.
//   A message with an attachment holds .attachment in its .content, with the file's name;
//   for a file of this server, a.attachment-link downloads it (fetch with the token, saved
//   from a blob: URL).

import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { assertClean } from './support/browser.mjs';
import { suite, uniqueUser, waitUntil } from './support/harness.mjs';
import { userToken } from './support/jwt.mjs';
import { JWT_SECRET, PREFIX } from './support/server.mjs';

const TEST_TIMEOUT_MS = 60000;

// A real 1×1 PNG.
const PNG = Buffer.from(
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
    'base64',
);

let uploadDir = null;
const stack = suite({
    extraEnv: async () => {
        uploadDir = await mkdtemp(join(tmpdir(), 'chatbox-browser-uploads-'));
        return { UPLOAD_STORE: 'local', UPLOAD_DIR: uploadDir };
    },
});
after(() => (uploadDir ? rm(uploadDir, { recursive: true, force: true }) : undefined));
const { withContext } = stack;

/** Records every WebSocket frame the pages of `context` send, parsed, in `sent`. */
function recordSentFrames(context) {
    const sent = [];
    context.on('page', (page) =>
        page.on('websocket', (socket) =>
            socket.on('framesent', ({ payload }) => {
                try {
                    sent.push(JSON.parse(String(payload)));
                } catch {
                    // not JSON
                }
            }),
        ),
    );
    return sent;
}

/** The response to the page's next POST P/uploads. */
function nextUpload(page) {
    return page.waitForResponse(
        (response) => response.request().method() === 'POST' && new URL(response.url()).pathname === `${PREFIX}/uploads`,
    );
}

/** What each message with an attachment shows. */
function attachments(page) {
    return page.$$eval('#messages .message', (messages) =>
        messages
            .filter((m) => m.querySelector('.attachment'))
            .map((m) => ({
                role: m.dataset.role,
                seq: m.dataset.seq ?? null,
                text: m.querySelector('.content').textContent.replace(/\s+/g, ' ').trim(),
                link: m.querySelector('.attachment a.attachment-link')?.getAttribute('href') ?? null,
            })),
    );
}

/** Waits until a stored user message (with a data-seq) shows an attachment named `name`. */
function waitForAttachment(page, name) {
    return waitUntil(
        page,
        `a stored user message with the attachment ${JSON.stringify(name)} and its download link`,
        (n) =>
            [...document.querySelectorAll('#messages .message[data-role="user"]')].some(
                (m) => m.dataset.seq && m.querySelector('.attachment a.attachment-link')?.textContent === n,
            ),
        name,
    );
}

describe('attachments on the chat page', { timeout: TEST_TIMEOUT_MS * 3 }, () => {
    test('a PNG chosen with the attach button is uploaded, sent with its caption and shown on every page', { timeout: TEST_TIMEOUT_MS }, () =>
        withContext({ acceptDownloads: true }, async (context) => {
            const user = uniqueUser('ann-attach');
            const token = userToken(user, JWT_SECRET);
            const sent = recordSentFrames(context);
            const asked = [];
            // Every URL the page asks for after it was opened with ?token=: none may carry it.
            context.on('request', (request) => {
                if (!request.isNavigationRequest()) asked.push(request.url());
            });
            const page = await stack.openChat(context, user, { token });

            const label = await page.getAttribute('#attach', 'aria-label');
            assert.ok(label && /attach/i.test(label), `#attach has an accessible label: ${label}`);
            assert.equal(await page.evaluate(() => document.querySelector('#attach').tagName), 'BUTTON');

            await page.fill('#prompt', 'Here is the dot');
            const uploaded = nextUpload(page);
            await page.setInputFiles('#attach-file', { name: 'dot.png', mimeType: 'image/png', buffer: PNG });
            const response = await uploaded;
            assert.equal(response.status(), 201, 'POST /uploads answered 201');
            assert.equal(response.request().headers().authorization, `Bearer ${token}`, 'the upload carried the token');
            const body = await response.json();
            assert.equal(body.name, 'dot.png');
            assert.equal(body.type, 'image/png');
            assert.equal(body.size, PNG.length);

            await waitForAttachment(page, 'dot.png');
            const frames = sent.filter((frame) => frame.type === 'file_upload');
            assert.equal(frames.length, 1, `one file_upload frame was sent: ${JSON.stringify(sent)}`);
            assert.equal(frames[0].file_id, body.file_id);
            assert.equal(frames[0].content, 'Here is the dot', 'the typed text is the caption');
            assert.ok(frames[0].client_message_id, 'the frame has a client_message_id');
            assert.equal(await page.inputValue('#prompt'), '', 'the caption left the composer');
            const shown = await attachments(page);
            assert.equal(shown.length, 1, `one attachment shows: ${JSON.stringify(shown)}`);
            assert.match(shown[0].text, /Here is the dot/);
            assert.match(shown[0].text, /dot\.png/);
            assert.ok(shown[0].link?.startsWith(`${PREFIX}/files/`), `the link is this server's file: ${shown[0].link}`);

            // The picture is shown too, decoded from the very bytes (a blob: of the fetch).
            await page.waitForFunction(
                () => document.querySelector('img.attachment-preview')?.complete
                    && document.querySelector('img.attachment-preview').naturalWidth === 1,
                null,
                { timeout: 15000 },
            );
            assert.equal(await page.getAttribute('img.attachment-preview', 'alt'), 'dot.png');
            assert.match(await page.getAttribute('img.attachment-preview', 'src'), /^blob:/);

            // The link downloads the very bytes, with the token in a header, never in a URL.
            const [download] = await Promise.all([page.waitForEvent('download'), page.click('.attachment a.attachment-link')]);
            assert.equal(download.suggestedFilename(), 'dot.png');
            assert.deepEqual(await readFile(await download.path()), PNG, 'the download is the uploaded PNG');
            assert.deepEqual(asked.filter((url) => url.includes(token)), [], 'the token went into a URL');

            // Another page of the same user on the same conversation shows it from the history.
            const session = await page.getAttribute('#messages', 'data-session-id');
            assert.ok(session, 'the page knows its session');
            await withContext(async (other) => {
                const second = await stack.openChat(other, user, { session });
                await waitForAttachment(second, 'dot.png');
                const again = await attachments(second);
                assert.equal(again.length, 1, `the other page shows the attachment once: ${JSON.stringify(again)}`);
                assert.match(again[0].text, /Here is the dot/);
                assertClean(second);
            });
            assertClean(page);
        }),
    );

    test('a text file named .png is refused: the page says why and sends nothing', { timeout: TEST_TIMEOUT_MS }, () =>
        withContext(async (context) => {
            const user = uniqueUser('bob-attach');
            const sent = recordSentFrames(context);
            const page = await stack.openChat(context, user);

            await page.fill('#prompt', 'Not really a picture');
            const uploaded = nextUpload(page);
            await page.setInputFiles('#attach-file', {
                name: 'fake.png',
                mimeType: 'image/png',
                buffer: Buffer.from('just some text, not a picture\n'),
            });
            const response = await uploaded;
            assert.equal(response.status(), 415, 'POST /uploads refused the file with 415');
            const body = await response.json();
            assert.equal(body.code, 'UNSUPPORTED_MEDIA_TYPE');
            assert.ok(body.error, 'the refusal has an error text');

            await waitUntil(
                page,
                `#attach-error (role=alert) to show ${JSON.stringify(body.error)}`,
                (text) => {
                    const alert = document.querySelector('[role="alert"]#attach-error');
                    return !!alert && alert.textContent.includes(text) && alert.getClientRects().length > 0;
                },
                body.error,
            );
            // Give a wrongly sent frame time to come back as a message.
            await page.waitForTimeout(500);
            assert.deepEqual(await attachments(page), [], 'no attachment shows');
            assert.equal(await page.locator('#messages .message[data-role="user"]').count(), 0, 'no message shows');
            assert.deepEqual(sent.filter((frame) => frame.type === 'file_upload'), [], 'no file_upload frame was sent');
            assert.equal(await page.inputValue('#prompt'), 'Not really a picture', 'the typed text stays');
            assert.equal(await page.textContent('#attach-status'), '', 'the uploading state is over');
            assert.equal(await page.isDisabled('#attach'), false, 'the attach button works again');
            assertClean(page, { allowConsole: [/status of 415/] });
        }),
    );
});
