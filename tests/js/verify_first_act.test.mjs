// The visitor page's reducer (verify_state.js) for a page without a session, which connects once
// the visitor acts, and for the challenge the server may ask for before a send.
import assert from "node:assert/strict";
import { test } from "node:test";

import { initial, update } from "../../verification/static/verification/verify_state.js";

const STRINGS = {
  checking_browser: "Checking your browser…",
  not_connected: "Not connected.",
  error_fallback: "Something went wrong.",
  phone_required: "Enter your number.",
  retry_in: "Try again in {time}.",
};
const PHONE = "+999 66 2 1234";
const CHALLENGE = { kind: "hashcash", token: "t", difficulty: 18, expires_in: 300 };
const sending = { id: "v1", phone_number: PHONE, status: "sending", code: null };

const kinds = (state, kind) => state.effects.filter(([k]) => k === kind).map(([, ...rest]) => rest);
const sent = (state) => kinds(state, "send").map(([message]) => message);
const said = (state) => kinds(state, "announce").map(([text]) => text);
const frame = (f) => ({ type: "frame", frame: f });

function waiting() {
  return update(initial(STRINGS), { type: "waiting", now: 0 });
}

function connected() {
  let state = update(initial(STRINGS), { type: "open", now: 0 });
  return update(state, frame({ type: "state", verification: null }));
}

test("a page without a session waits for the visitor, and says nothing about it", () => {
  const state = waiting();
  assert.equal(state.connection, "waiting");
  assert.equal(state.step, "number"); // usable at once
  assert.ok(!state.banner);
  assert.deepEqual(said(state), []);
  assert.deepEqual(kinds(state, "focus"), []);
});

test("a send made while the session is being asked for goes out once the socket opens", () => {
  let state = update(waiting(), { type: "send_code", phone: PHONE });
  assert.deepEqual(sent(state), []);
  assert.equal(state.pending.send, true);
  assert.equal(state.errors.phone, undefined); // not "not connected": it is on its way
  state = update(state, { type: "open" });
  assert.deepEqual(sent(state), [{ type: "send_code", phone_number: PHONE }]);
  state = update(state, frame({ type: "state", verification: null }));
  assert.deepEqual(sent(state), []); // once only
});

test("a refused session request is shown at the number, and nothing is sent later", () => {
  let state = update(waiting(), { type: "send_code", phone: PHONE });
  state = update(state, { type: "session_failed", message: "Too many visits.", retryAfter: 60 });
  assert.equal(state.connection, "waiting");
  assert.equal(state.pending.send, undefined);
  assert.equal(state.errors.phone.message, "Too many visits.");
  assert.deepEqual(kinds(state, "alert"), [["Too many visits. Try again in 1:00."]]);
  state = update(state, { type: "open" });
  assert.deepEqual(sent(state), []);
  const failed = update(waiting(), { type: "session_failed" });
  assert.equal(failed.errors.phone.message, "Something went wrong.");
});

test("CHALLENGE_REQUIRED: checking the browser is shown and said, solved, then sent again", () => {
  let state = update(connected(), { type: "send_code", phone: PHONE });
  state = update(state, {
    ...frame({ type: "error", code: "CHALLENGE_REQUIRED", message: "Check.", challenge: CHALLENGE }),
  });
  assert.deepEqual(kinds(state, "solve"), [[CHALLENGE]]);
  assert.equal(state.errors.status.message, "Checking your browser…");
  assert.deepEqual(said(state), ["Checking your browser…"]);
  assert.deepEqual(kinds(state, "alert"), []); // not an error
  assert.deepEqual(kinds(state, "focus"), []); // focus stays where the visitor left it
  assert.equal(state.pending.send, true);

  const answer = { token: "t", nonce: "42" };
  state = update(state, { type: "challenge_solved", answer });
  assert.deepEqual(sent(state), [{ type: "send_code", phone_number: PHONE, challenge: answer }]);
  assert.equal(state.errors.status, undefined);
  state = update(state, frame({ type: "state", verification: sending }));
  state = update(state, frame({ type: "code_sent", verification: { ...sending, status: "code_sent", code: { type: "sms", length: 5 } } }));
  assert.equal(state.step, "code");
});

test("a failed check is shown at the number, and the next send starts afresh", () => {
  let state = update(connected(), { type: "send_code", phone: PHONE });
  state = update(state, frame({ type: "error", code: "CHALLENGE_REQUIRED", message: "Check.", challenge: CHALLENGE }));
  state = update(state, { type: "challenge_solved", answer: { token: "t", nonce: "1" } });
  state = update(state, frame({ type: "error", code: "CHALLENGE_FAILED", message: "Did not pass.", challenge: CHALLENGE }));
  assert.deepEqual(kinds(state, "solve"), []);
  assert.equal(state.errors.phone.message, "Did not pass.");
  assert.equal(state.errors.status, undefined);
  assert.equal(state.pending.send, undefined);
  state = update(state, { type: "send_code", phone: PHONE });
  assert.deepEqual(sent(state), [{ type: "send_code", phone_number: PHONE }]);
});

test("a worker that fails is an error at the number, not a page stuck checking", () => {
  let state = update(connected(), { type: "send_code", phone: PHONE });
  state = update(state, frame({ type: "error", code: "CHALLENGE_REQUIRED", message: "Check.", challenge: CHALLENGE }));
  state = update(state, { type: "challenge_failed" });
  assert.equal(state.errors.status, undefined);
  assert.equal(state.errors.phone.message, "Something went wrong.");
  assert.equal(state.pending.send, undefined);
  assert.deepEqual(sent(state), []);
});
