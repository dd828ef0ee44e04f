// Starts the compiled Chatbox binary for the browser tests, the way the Rust tests do
// (tests/support/process.rs): a clean environment holding only PATH and the variables
// below, JSON logs, port 0 (a free port), memory storage, a fixed JWT secret (the tests
// mint their own tokens with support/jwt.mjs; `--dev` is not used), and one `openai`
// provider pointing at the mock provider (support/mock-provider.mjs). The listening
// address is read from the `Server listening on <addr>` log line.
//
// The binary is `CHATBOX_BIN`, or target/debug/chatbox under the repository root.
// The returned handle has `baseUrl` (e.g. http://127.0.0.1:41234), `log()` (the lines
// printed so far) and `stop()` (SIGTERM, then SIGKILL if it does not exit in time). The
// process is killed when the test process exits, whatever happens.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** The HS256 secret of the test server: ≥32 bytes, none of the words the server refuses. */
export const JWT_SECRET = 'browser-suite-hs256-key-7f3a9c1e5b2d4086';

/** The mock provider's id and API key as the server is configured with them. */
export const PROVIDER_ID = 'mock';
export const PROVIDER_MODEL = 'mock-model';
export const PROVIDER_API_KEY = 'mock-provider-key-for-browser-tests';

/** The HTTP path prefix (the server's default `CHATBOX_PATH_PREFIX`). */
export const PREFIX = '/chat';

const START_TIMEOUT_MS = 20000;
const STOP_TIMEOUT_MS = 10000;

const running = new Set();
process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL');
});

function binaryPath() {
    const configured = process.env.CHATBOX_BIN || 'target/debug/chatbox';
    return isAbsolute(configured) ? configured : resolve(REPO_ROOT, configured);
}

/** The `message` of a JSON log line, or the whole line. */
function messageOf(line) {
    try {
        const value = JSON.parse(line);
        if (typeof value?.message === 'string') return value.message;
        if (typeof value?.fields?.message === 'string') return value.fields.message;
    } catch {
        // not JSON: a panic or a line from a library
    }
    return line;
}

/**
 * Starts the server with the mock provider at `providerEndpoint` (its base URL, ending in
 * /v1). `extraEnv` adds or overrides variables.
 */
export async function startServer({ providerEndpoint, extraEnv = {} }) {
    const binary = binaryPath();
    if (!existsSync(binary)) {
        throw new Error(`the chatbox binary ${binary} does not exist: build it (cargo build -p chatbox) or set CHATBOX_BIN`);
    }
    const env = {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        JWT_SECRET,
        SERVER_HOST: '127.0.0.1',
        SERVER_PORT: '0',
        LOG_FORMAT: 'json',
        LOG_LEVEL: 'info',
        STORAGE_BACKEND: 'memory',
        LLM_PROVIDER_1_ID: PROVIDER_ID,
        LLM_PROVIDER_1_NAME: 'Mock model',
        LLM_PROVIDER_1_TYPE: 'openai',
        LLM_PROVIDER_1_ENDPOINT: providerEndpoint,
        LLM_PROVIDER_1_API_KEY: PROVIDER_API_KEY,
        LLM_PROVIDER_1_MODEL: PROVIDER_MODEL,
        // Retries would hide a failing mock; the tests want to see the first failure.
        LLM_MAX_RETRIES: '0',
        ...extraEnv,
    };
    const child = spawn(binary, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    const lines = [];
    let exited = null;
    const exitedPromise = new Promise((resolveExit) => {
        child.once('exit', (code, signal) => {
            exited = { code, signal };
            running.delete(child);
            resolveExit(exited);
        });
    });

    const address = await new Promise((resolveAddress, reject) => {
        let settled = false;
        const fail = (why) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            child.kill('SIGKILL');
            reject(new Error(`${why}; the server printed:\n${lines.join('\n')}`));
        };
        const timer = setTimeout(
            () => fail(`the server did not log "Server listening on" within ${START_TIMEOUT_MS} ms`),
            START_TIMEOUT_MS,
        );
        child.once('error', (error) => fail(`cannot start ${binary}: ${error.message}`));
        exitedPromise.then(({ code, signal }) => fail(`the server exited (code ${code}, signal ${signal}) before listening`));
        for (const stream of [child.stdout, child.stderr]) {
            createInterface({ input: stream }).on('line', (line) => {
                lines.push(line);
                const message = messageOf(line);
                const at = message.indexOf('Server listening on ');
                if (at === -1) return;
                const match = /^[0-9.:[\]a-fA-F]+/.exec(message.slice(at + 'Server listening on '.length));
                if (!match) return fail(`cannot read an address in the log line ${JSON.stringify(line)}`);
                if (settled) return;
                settled = true;
                clearTimeout(timer);
                resolveAddress(match[0]);
            });
        }
    });
    const port = Number(address.slice(address.lastIndexOf(':') + 1));
    if (!Number.isInteger(port) || port <= 0) throw new Error(`no port in the listening address ${address}`);

    return {
        baseUrl: `http://127.0.0.1:${port}`,
        port,
        log: () => lines.slice(),
        async stop() {
            if (exited) return exited;
            child.kill('SIGTERM');
            const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
            const result = await exitedPromise;
            clearTimeout(timer);
            return result;
        },
    };
}
