// The chat page's controls that change what is sent or copied: the model selector (the
// session's model is set through `model_select`, the next answer comes from that model,
// and a reload shows it chosen) and the copy button of a code block (the code, and only
// the code, reaches the clipboard). The server has two models on the mock provider.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { assertClean } from './support/browser.mjs';
import { chatAndWait, suite, uniqueUser, waitForStatus, waitUntil } from './support/harness.mjs';
import { PROVIDER_API_KEY } from './support/server.mjs';

const SECOND_MODEL = 'second-upstream-model';

const stack = suite({
    extraEnv: async () => ({
        LLM_PROVIDER_2_ID: 'second',
        LLM_PROVIDER_2_NAME: 'Second model',
        LLM_PROVIDER_2_TYPE: 'openai',
        LLM_PROVIDER_2_ENDPOINT: stack.provider.endpoint,
        LLM_PROVIDER_2_API_KEY: PROVIDER_API_KEY,
        LLM_PROVIDER_2_MODEL: SECOND_MODEL,
    }),
});

test('the model selector sets the session\'s model, which answers and stays chosen', () =>
    stack.withContext(async (context) => {
        const user = uniqueUser('model');
        const page = await stack.openChat(context, user);
        const options = await page.$$eval('#model option', (all) => all.map((o) => [o.value, o.textContent]));
        assert.deepEqual(options, [['mock', 'Mock model'], ['second', 'Second model']]);
        await chatAndWait(page, 'first, on the default model', 1);
        await page.selectOption('#model', 'second');
        const asked = stack.provider.requests.length;
        await chatAndWait(page, 'now on the second model', 2);
        const request = stack.provider.requests[asked];
        assert.equal(request?.model, SECOND_MODEL, 'the answer came from the chosen model');
        const session = await page.$eval('#messages', (m) => m.dataset.sessionId);
        const again = await stack.openChat(context, user, { session });
        await waitUntil(again, 'the chosen model to show', () => document.querySelector('#model').value === 'second');
        assertClean(page);
        assertClean(again);
    }));

test('a code block\'s copy button puts its code on the clipboard', () =>
    stack.withContext({ permissions: ['clipboard-read', 'clipboard-write'] }, async (context) => {
        const page = await stack.openChat(context, uniqueUser('copy'));
        await chatAndWait(page, 'show me code', 1);
        await page.click('#messages pre .copy');
        await waitUntil(page, 'the button to say so', () => document.querySelector('#messages pre .copy').textContent === 'Copied');
        const copied = await page.evaluate(() => navigator.clipboard.readText());
        assert.equal(copied.trim(), 'console.log(1)', 'the code only, not the button\'s label');
        await waitForStatus(page, 'connected');
        assertClean(page);
    }));
