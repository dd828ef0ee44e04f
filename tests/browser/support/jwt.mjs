// HS256 JSON Web Tokens for the browser tests, signed with node:crypto and the secret the
// test server is started with (support/server.mjs). The claims are those of the Rust
// tests' tokens (tests/support/jwt.rs): a user token carries `user_id` and `exp`; an admin
// token adds a display `name` and the `admin` role. Both are valid for an hour.

import { createHmac } from 'node:crypto';

const HOUR_SECONDS = 3600;

function base64url(value) {
    return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

/** Signs `claims` with HMAC-SHA256 under `secret`. */
export function sign(claims, secret) {
    const input = `${base64url({ alg: 'HS256', typ: 'JWT' })}.${base64url(claims)}`;
    const signature = createHmac('sha256', secret).update(input).digest('base64url');
    return `${input}.${signature}`;
}

function expiry() {
    return Math.floor(Date.now() / 1000) + HOUR_SECONDS;
}

/** A token of `user`, valid for an hour. */
export function userToken(user, secret) {
    return sign({ user_id: user, exp: expiry() }, secret);
}

/** A token of `user` with the `admin` role, valid for an hour. */
export function adminToken(user, secret) {
    return sign({ user_id: user, name: `Ada ${user}`, roles: ['admin'], exp: expiry() }, secret);
}
