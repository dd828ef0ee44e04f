// Load test for Chatbox with k6 (https://k6.io): every virtual user connects a WebSocket,
// waits for connection_status, sends MESSAGES chat messages one after the other and
// reads each streamed answer to its final frame, then closes and starts over.
//
//   k6 run deployments/load-test.js                                   # 127.0.0.1:8080
//   k6 run -e BASE_URL=wss://chat.example.com/chat -e JWT_SECRET=... deployments/load-test.js
//
// Authentication, one of:
//   JWT_SECRET  the service's secret: each virtual user gets its own user id
//               (loadtest-<VU>), so per-user limits (MAX_CONNECTIONS_PER_USER,
//               RATE_LIMIT) apply per virtual user, as with real users
//   TOKEN       one token for every virtual user: they all count as one user, so keep
//               VUS at or below MAX_CONNECTIONS_PER_USER (10) and the message rate
//               under RATE_LIMIT
// JWT_ISSUER / JWT_AUDIENCE: set them when the service requires them.
//
// Other knobs: VUS (default 20), DURATION (default 1m), MESSAGES per connection
// (default 3), MODEL_ID (default: the service's first model), ANSWER_TIMEOUT_MS
// (default 60000). Run it against a staging installation or your own machine: its
// traffic is real load, and with a real provider every message is a paid model call.
import ws from 'k6/ws';
import { check, fail } from 'k6';
import crypto from 'k6/crypto';
import encoding from 'k6/encoding';
import { Counter, Rate, Trend } from 'k6/metrics';

const BASE_URL = (__ENV.BASE_URL || 'ws://127.0.0.1:8080/chat').replace(/\/$/, '');
const MESSAGES = Number(__ENV.MESSAGES || 3);
const ANSWER_TIMEOUT_MS = Number(__ENV.ANSWER_TIMEOUT_MS || 60000);

export const options = {
  scenarios: {
    chat: {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: [
        { duration: '15s', target: Number(__ENV.VUS || 20) },
        { duration: __ENV.DURATION || '1m', target: Number(__ENV.VUS || 20) },
        { duration: '10s', target: 0 },
      ],
      gracefulRampDown: '30s',
    },
  },
  thresholds: {
    checks: ['rate>0.99'],
    ws_connecting: ['p(95)<1000'],
    chatbox_time_to_first_chunk: ['p(95)<3000'],
    chatbox_answers_completed: ['rate>0.99'],
  },
};

const timeToFirstChunk = new Trend('chatbox_time_to_first_chunk', true);
const answerDuration = new Trend('chatbox_answer_duration', true);
const answersCompleted = new Rate('chatbox_answers_completed');
const chunksReceived = new Counter('chatbox_chunks');
const errorFrames = new Counter('chatbox_error_frames');

/** An HS256 token for `userId`, valid for an hour, signed with JWT_SECRET. */
function mintToken(userId) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: userId, user_id: userId, name: userId, roles: ['user'], iat: now, exp: now + 3600 };
  if (__ENV.JWT_ISSUER) claims.iss = __ENV.JWT_ISSUER;
  if (__ENV.JWT_AUDIENCE) claims.aud = __ENV.JWT_AUDIENCE;
  const header = encoding.b64encode(JSON.stringify({ alg: 'HS256', typ: 'JWT' }), 'rawurl');
  const payload = encoding.b64encode(JSON.stringify(claims), 'rawurl');
  const signature = crypto.hmac('sha256', __ENV.JWT_SECRET, `${header}.${payload}`, 'base64rawurl');
  return `${header}.${payload}.${signature}`;
}

function token() {
  if (__ENV.TOKEN) return __ENV.TOKEN;
  if (__ENV.JWT_SECRET) return mintToken(`loadtest-${__VU}`);
  return fail('set JWT_SECRET (per-user tokens) or TOKEN (one shared token)');
}

export default function () {
  const url = `${BASE_URL}/ws?token=${encodeURIComponent(token())}`;
  let connected = false;
  let sent = 0;
  let answered = 0;
  let answer = null; // { startedAt, firstChunkAt, chunks }

  function sendNext(socket) {
    if (sent === MESSAGES) {
      socket.close(1000);
      return;
    }
    sent += 1;
    const frame = {
      type: 'user_message',
      content: `Load test message ${sent} from virtual user ${__VU}, iteration ${__ITER}.`,
      client_message_id: `vu${__VU}-it${__ITER}-m${sent}`,
    };
    if (__ENV.MODEL_ID) frame.model_id = __ENV.MODEL_ID;
    answer = { startedAt: Date.now(), firstChunkAt: null, chunks: 0 };
    socket.send(JSON.stringify(frame));
  }

  const response = ws.connect(url, {}, function (socket) {
    socket.on('message', function (data) {
      let frame;
      try {
        frame = JSON.parse(data);
      } catch (e) {
        check(null, { 'frames are JSON': () => false });
        return;
      }
      const metadata = frame.metadata || {};
      switch (frame.type) {
        case 'connection_status':
          if (!connected) {
            connected = true;
            sendNext(socket);
          }
          break;
        case 'ai_response':
        case 'assistant':
          if (answer === null) break;
          if (metadata.done === 'true') {
            answerDuration.add(Date.now() - answer.startedAt);
            const finished = metadata.finish_reason === 'stop' || metadata.finish_reason === 'length';
            answersCompleted.add(finished && answer.chunks > 0);
            check(metadata, { 'answer finished normally': () => finished });
            answered += 1;
            answer = null;
            sendNext(socket);
          } else if (frame.content) {
            if (answer.firstChunkAt === null) {
              answer.firstChunkAt = Date.now();
              timeToFirstChunk.add(answer.firstChunkAt - answer.startedAt);
            }
            answer.chunks += 1;
            chunksReceived.add(1);
          }
          break;
        case 'error':
          // The answer's own final frame follows an answer error; a refused message
          // (rate limit, full queue) has none, so count it as an answer that failed.
          errorFrames.add(1, { code: (frame.error && frame.error.code) || 'unknown' });
          if (answer !== null && answer.chunks === 0 && frame.error && frame.error.code === 'TOO_MANY_REQUESTS') {
            answersCompleted.add(false);
            answered += 1;
            answer = null;
            sendNext(socket);
          }
          break;
        default:
          break;
      }
    });
    socket.on('error', function (e) {
      check(null, { 'no socket errors': () => false });
      console.error(`VU ${__VU}: ${e.error ? e.error() : e}`);
    });
    // A safety net: a stuck answer ends the connection instead of the whole test.
    socket.setTimeout(function () {
      if (answer !== null) answersCompleted.add(false);
      socket.close(1000);
    }, ANSWER_TIMEOUT_MS * MESSAGES);
  });

  check(response, { 'upgraded (101)': (r) => r && r.status === 101 });
  check(null, {
    'connection_status received': () => connected,
    'every message answered': () => answered === MESSAGES,
  });
}
