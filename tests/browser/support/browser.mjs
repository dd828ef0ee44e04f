// Headless Chromium for the browser tests, through playwright-core and the system's
// Chromium (`CHROMIUM`, default /usr/bin/chromium; Playwright never downloads a browser
// here). Every page opened with `openPage` records what went wrong in it — console errors,
// uncaught exceptions and Content-Security-Policy violations — so a test can assert there
// were none (`assertClean`).

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** Launches headless Chromium. */
export async function launchBrowser() {
    if (!existsSync(CHROMIUM)) {
        throw new Error(`no Chromium at ${CHROMIUM}: install it (apt-get install chromium) or set CHROMIUM`);
    }
    return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
}

// Runs in every document before its own scripts: reports each CSP violation as a console
// error with a recognisable prefix (Chromium also logs its own message, but this one
// carries the directive and the blocked resource in a stable form).
function reportCspViolations() {
    document.addEventListener('securitypolicyviolation', (event) => {
        console.error(
            `CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || '(inline)'} ` +
                `at ${event.sourceFile || '?'}:${event.lineNumber || 0}`,
        );
    });
}

/**
 * A new page of `context` whose problems are collected in `page.problems`:
 * `{console: [...], pageErrors: [...], csp: [...]}` (strings).
 */
export async function openPage(context) {
    const page = await context.newPage();
    await page.addInitScript(reportCspViolations);
    const problems = { console: [], pageErrors: [], csp: [] };
    page.on('console', (message) => {
        if (message.type() !== 'error') return;
        const { url, lineNumber } = message.location();
        const text = `${message.text()}${url ? ` (${url}:${lineNumber})` : ''}`;
        problems.console.push(text);
        if (/CSP violation|Content Security Policy/i.test(message.text())) problems.csp.push(text);
    });
    page.on('pageerror', (error) => problems.pageErrors.push(error.stack || String(error)));
    page.problems = problems;
    return page;
}

/**
 * Fails unless `page` logged no console error, threw nothing and violated no CSP rule.
 * Console errors matching one of `allowConsole` (regular expressions) are tolerated, e.g.
 * the browser's own report of a socket it lost while the test cut the network, and so are
 * CSP violations matching one of `allowCsp`.
 */
export function assertClean(page, { allowConsole = [], allowCsp = [] } = {}) {
    const { console: errors, pageErrors, csp } = page.problems;
    const violations = csp.filter((text) => !allowCsp.some((pattern) => pattern.test(text)));
    assert.deepEqual(violations, [], `Content-Security-Policy violations on ${page.url()}`);
    assert.deepEqual(pageErrors, [], `uncaught exceptions on ${page.url()}`);
    const unexpected = errors.filter((text) => !allowConsole.some((pattern) => pattern.test(text)));
    assert.deepEqual(unexpected, [], `console errors on ${page.url()}`);
}
