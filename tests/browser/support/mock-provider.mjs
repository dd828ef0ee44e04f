// A local model provider for the browser tests: an HTTP server on a free loopback port
// that speaks OpenAI's streaming chat-completions wire format, as the gateway's `openai`
// adapter (adapters/llm/src/openai.rs) calls it: `POST <endpoint>/chat/completions` with
// `"stream": true`, answered by a `text/event-stream` of `chat.completion.chunk` events,
// one with `finish_reason: "stop"`, one with the usage (`stream_options.include_usage`),
// then `data: [DONE]`.
//
// The answer is scripted by the last user message of the request:
//   contains INJECT -> a Markdown answer carrying script, event-handler and javascript: links
//   contains SLOW   -> `w1 w2 … w40 `, one token per 100 ms
//   otherwise       -> a short Markdown answer (a list, a code block, a table) in ~10 chunks
//
// It records every request body (`.requests`), counts streams that finished and streams the
// client hung up on, and lets a test wait for any of that with a deadline (`waitFor`).

import { createServer } from 'node:http';
import { EventEmitter } from 'node:events';

export const INJECT_ANSWER =
    'Here: <script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2"> ' +
    '[click](javascript:window.__pwned=3) and **bold**';

export const SLOW_WORDS = 40;
export const SLOW_INTERVAL_MS = 100;

export const DEFAULT_ANSWER =
    'Sure.\n\n- one\n- two\n\n```js\nconsole.log(1)\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n';

/** The tokens of the scripted answer to `prompt`, and the pause before each. */
export function script(prompt) {
    if (prompt.includes('INJECT')) {
        return { tokens: splitInto(INJECT_ANSWER, 6), intervalMs: 20 };
    }
    if (prompt.includes('SLOW')) {
        const tokens = Array.from({ length: SLOW_WORDS }, (_, i) => `w${i + 1} `);
        return { tokens, intervalMs: SLOW_INTERVAL_MS };
    }
    return { tokens: splitInto(DEFAULT_ANSWER, 10), intervalMs: 20 };
}

/** `text` cut into `parts` pieces of about equal length (never empty). */
function splitInto(text, parts) {
    const size = Math.ceil(text.length / parts);
    const pieces = [];
    for (let i = 0; i < text.length; i += size) {
        pieces.push(text.slice(i, i + size));
    }
    return pieces;
}

/** The text of the last `user` message of an OpenAI request body ('' if none). */
function lastUserMessage(body) {
    const messages = Array.isArray(body?.messages) ? body.messages : [];
    for (let i = messages.length - 1; i >= 0; i--) {
        const message = messages[i];
        if (message?.role !== 'user') continue;
        if (typeof message.content === 'string') return message.content;
        if (Array.isArray(message.content)) {
            return message.content.map((part) => (typeof part?.text === 'string' ? part.text : '')).join('');
        }
        return '';
    }
    return '';
}

/**
 * Starts the mock provider. `apiKey`, when given, must come as `Authorization: Bearer <key>`
 * (401 otherwise), as it would at a real provider.
 */
export async function startMockProvider({ apiKey } = {}) {
    const events = new EventEmitter();
    const state = {
        requests: [],
        headers: [],
        active: 0,
        completed: 0,
        hangUps: 0,
        chunksSent: 0,
    };
    const timers = new Set();
    const changed = () => events.emit('change');

    const server = createServer((request, response) => {
        const chunks = [];
        request.on('data', (chunk) => chunks.push(chunk));
        request.on('end', () => handle(request, response, Buffer.concat(chunks).toString('utf8')));
    });

    function reply(response, status, body) {
        response.writeHead(status, { 'content-type': 'application/json' });
        response.end(JSON.stringify(body));
    }

    function handle(request, response, raw) {
        const path = new URL(request.url, 'http://mock').pathname;
        if (request.method !== 'POST' || path !== '/v1/chat/completions') {
            reply(response, 404, { error: { message: `no route ${request.method} ${path}`, type: 'not_found' } });
            return;
        }
        if (apiKey && request.headers.authorization !== `Bearer ${apiKey}`) {
            reply(response, 401, { error: { message: 'invalid api key', type: 'invalid_request_error' } });
            return;
        }
        let body;
        try {
            body = JSON.parse(raw);
        } catch {
            reply(response, 400, { error: { message: 'the body is not JSON', type: 'invalid_request_error' } });
            return;
        }
        state.requests.push(body);
        state.headers.push(request.headers);
        changed();
        if (body.stream !== true) {
            reply(response, 400, { error: { message: 'this mock streams only', type: 'invalid_request_error' } });
            return;
        }
        stream(response, body);
    }

    function stream(response, body) {
        const id = `chatcmpl-mock-${state.requests.length}`;
        const created = Math.floor(Date.now() / 1000);
        const model = body.model || 'mock-model';
        const { tokens, intervalMs } = script(lastUserMessage(body));
        const chunk = (delta, finishReason) =>
            `data: ${JSON.stringify({
                id,
                object: 'chat.completion.chunk',
                created,
                model,
                choices: [{ index: 0, delta, finish_reason: finishReason }],
            })}\n\n`;

        response.writeHead(200, {
            'content-type': 'text/event-stream',
            'cache-control': 'no-cache',
            connection: 'keep-alive',
        });
        response.flushHeaders();
        state.active += 1;
        changed();

        let next = 0;
        let finished = false;
        let timer = null;
        const finish = (hungUp) => {
            if (finished) return;
            finished = true;
            if (timer) {
                clearTimeout(timer);
                timers.delete(timer);
            }
            state.active -= 1;
            if (hungUp) state.hangUps += 1;
            else state.completed += 1;
            changed();
        };
        // The client (the gateway) closing the connection before the end: a cancelled answer.
        response.on('close', () => finish(!response.writableFinished));

        const step = () => {
            timers.delete(timer);
            timer = null;
            if (finished) return;
            if (next === 0) response.write(chunk({ role: 'assistant', content: '' }, null));
            if (next < tokens.length) {
                response.write(chunk({ content: tokens[next] }, null));
                next += 1;
                state.chunksSent += 1;
                changed();
                timer = setTimeout(step, intervalMs);
                timers.add(timer);
                return;
            }
            response.write(chunk({}, 'stop'));
            response.write(
                `data: ${JSON.stringify({
                    id,
                    object: 'chat.completion.chunk',
                    created,
                    model,
                    choices: [],
                    usage: { prompt_tokens: 10, completion_tokens: tokens.length, total_tokens: 10 + tokens.length },
                })}\n\n`,
            );
            response.end('data: [DONE]\n\n');
            finish(false);
        };
        timer = setTimeout(step, intervalMs);
        timers.add(timer);
    }

    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
    });
    const { port } = server.address();

    const mock = {
        port,
        /** The base URL the gateway is configured with (`LLM_PROVIDER_<N>_ENDPOINT`). */
        endpoint: `http://127.0.0.1:${port}/v1`,
        /**
         * Resolves when `predicate(this)` holds; rejects after `timeoutMs` with `what` and the
         * counters in the message.
         */
        waitFor(predicate, what, timeoutMs = 15000) {
            return new Promise((resolve, reject) => {
                const check = () => {
                    if (!predicate(this)) return false;
                    clearTimeout(deadline);
                    events.off('change', check);
                    resolve();
                    return true;
                };
                const deadline = setTimeout(() => {
                    events.off('change', check);
                    reject(
                        new Error(
                            `mock provider: timed out after ${timeoutMs} ms waiting for ${what} ` +
                                `(requests=${state.requests.length} active=${state.active} ` +
                                `completed=${state.completed} hangUps=${state.hangUps} chunks=${state.chunksSent})`,
                        ),
                    );
                }, timeoutMs);
                if (!check()) events.on('change', check);
            });
        },
        /** Stops the server, ending any stream in progress. */
        async close() {
            for (const timer of timers) clearTimeout(timer);
            timers.clear();
            server.closeAllConnections();
            await new Promise((resolve) => server.close(() => resolve()));
        },
    };
    // Read-only live views of the state: `requests` (every parsed request body, in order),
    // `requestHeaders` (the headers of every request, in order), `active`, `completed` and
    // `hangUps` (streams in progress, finished, and abandoned by the client) and
    // `chunksSent` (tokens sent over all streams).
    const views = {
        requests: 'requests',
        requestHeaders: 'headers',
        active: 'active',
        completed: 'completed',
        hangUps: 'hangUps',
        chunksSent: 'chunksSent',
    };
    for (const [name, key] of Object.entries(views)) {
        Object.defineProperty(mock, name, { get: () => state[key], enumerable: true });
    }
    return mock;
}
