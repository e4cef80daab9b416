// The visitor page's reducer (verification/static/verification/verify_state.js): server frames,
// intents and socket events in, the next state and its effects out.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  initial,
  sendWait,
  update,
  visible,
} from "../../verification/static/verification/verify_state.js";
import { backoff, resendSlot } from "../../verification/static/verification/verify_timers.js";

const STRINGS = {
  rate_limited: "Too many codes. New code in {time}.",
  rate_limited_phone: "Too many for this number. New code in {time}.",
  rate_limited_address: "Too many from your network. New code in {time}.",
  retry_in: "Try again in {time}.",
  not_connected: "Not connected.",
  phone_required: "Enter your number.",
  code_required: "Enter the code.",
  code_wrong_length: "The code has {length} characters.",
  code_sms: "SMS to {phone}.",
  code_call: "Calling {phone}.",
  code_unknown: "A code for {phone}.",
  countdown_call: "Call in {time}",
  countdown_sms: "SMS in {time}",
  resend_call: "Call me",
  resend_sms: "Send an SMS",
  resend_ready: "You can now choose “{action}”.",
  expires_soon: "Expires in {time}.",
  attempts_left: { 4: "4 attempts left" },
  attempts_left_any: "Attempts left: {count}",
  status_cancelled: "Cancelled.",
  status_expired: "Expired.",
  verified_announce: "{phone} verified.",
  reconnecting: "Reconnecting…",
  connecting: "Connecting…",
  handshake_refused: "Refused.",
  closed_frames: "Too many messages.",
  closed_owner: "Signed in elsewhere.",
  closed_session: "Cannot keep track.",
  websocket_unavailable: "No WebSockets.",
  error_fallback: "Something went wrong.",
};

const PHONE = "+999 66 2 1234";
const snapshot = (fields = {}) => ({
  id: "v1",
  phone_number: PHONE,
  status: "code_sent",
  code: { type: "sms", length: 5 },
  next_type: "call",
  resend_in: 60,
  expires_in: 600,
  attempts_left: 5,
  error: null,
  ...fields,
});

// Runs `events` from a connected page that got `first` in its greeting, at time `now` (ms).
function run(events, { first = null, now = 0 } = {}) {
  let state = update(initial(STRINGS), { type: "open", now });
  state = update(state, { type: "frame", frame: { type: "state", verification: first }, now });
  for (const event of events) state = update(state, { now, ...event });
  return state;
}
const frame = (f, now = 0) => ({ type: "frame", frame: f, now });
const kinds = (state, kind) => state.effects.filter(([k]) => k === kind).map(([, ...rest]) => rest);
const sent = (state) => kinds(state, "send").map(([message]) => message);
const said = (state) => kinds(state, "announce").map(([text]) => text);

test("the greeting's snapshot decides the step and dates its deadlines from now", () => {
  const state = run([], { first: snapshot({ resend_in: 30 }), now: 1000 });
  assert.equal(state.step, "code");
  assert.equal(state.resendAt, 31_000);
  assert.equal(state.expiresAt, 601_000);
  assert.deepEqual(kinds(state, "focus"), [["step"]]);
  assert.equal(run([], { first: null }).step, "number");
  assert.equal(run([], { first: snapshot({ status: "verified" }) }).step, "done");
  assert.equal(run([], { first: snapshot({ status: "waiting", method: "passport" }) }).step, "passport");
});

test("a page reloaded on an expired code says so without speaking, and offers the number", () => {
  const state = run([], { first: snapshot({ status: "expired", expires_in: null }) });
  assert.equal(state.step, "number");
  assert.equal(state.errors.status.message, "Expired.");
  assert.equal(state.errors.status.info, true);
  assert.deepEqual(said(state), []);
  assert.deepEqual(kinds(state, "phone"), [[PHONE]]);
});

test("send_code sends the number, then `sending` and `code_sent` move to the code step", () => {
  let state = run([{ type: "send_code", phone: ` ${PHONE} ` }]);
  assert.deepEqual(sent(state), [{ type: "send_code", phone_number: PHONE }]);
  assert.equal(state.pending.send, true);
  state = update(state, frame({ type: "state", verification: snapshot({ status: "sending", code: null }) }));
  assert.equal(state.step, "number");
  assert.equal(state.pending.send, false);
  state = update(state, frame({ type: "code_sent", verification: snapshot() }));
  assert.equal(state.step, "code");
  assert.deepEqual(kinds(state, "focus"), [["step"]]);
  assert.deepEqual(kinds(state, "clearCode"), [[]]);
});

test("an empty number is refused on the page, without sending", () => {
  const state = run([{ type: "send_code", phone: "  " }]);
  assert.deepEqual(sent(state), []);
  assert.equal(state.errors.phone.message, "Enter your number.");
  assert.deepEqual(kinds(state, "alert"), [["Enter your number."]]);
});

test("a new delivery on the code step is announced and takes the visitor back to the field", () => {
  const call = snapshot({ code: { type: "call", length: 5 }, next_type: null, resend_in: null });
  const state = run([frame({ type: "code_sent", verification: call })], { first: snapshot() });
  assert.deepEqual(said(state), ["Calling +999 66 2 1234."]);
  assert.deepEqual(kinds(state, "focus"), [["codeInput"]]);
  assert.equal(resendSlot(state, visible(state), 0).mode, "hidden");
});

test("the resend countdown is said at set seconds, then the button once", () => {
  let state = run([], { first: snapshot({ resend_in: 31 }) });
  state = update(state, { type: "tick", now: 1000 });
  assert.deepEqual(said(state), ["Call in 0:30"]);
  state = update(state, { type: "tick", now: 1200 });
  assert.deepEqual(said(state), []);
  state = update(state, { type: "tick", now: 31_000 });
  assert.equal(resendSlot(state, visible(state), 31_000).mode, "button");
  assert.deepEqual(said(state), ["You can now choose “Call me”."]);
  state = update(state, { type: "tick", now: 32_000 });
  assert.deepEqual(said(state), []);
});

test("resend_available opens the resend at once, whatever the local countdown says", () => {
  const state = run([frame({ type: "resend_available" }, 5000)], { first: snapshot() });
  assert.equal(resendSlot(state, visible(state), 5000).mode, "button");
});

test("a resend that could only come after the code expires is not offered", () => {
  const state = run([], { first: snapshot({ resend_in: 45, expires_in: 10 }) });
  assert.equal(resendSlot(state, visible(state), 0).mode, "hidden");
  assert.deepEqual(said(state), []);
  const sooner = run([], { first: snapshot({ resend_in: 5, expires_in: 10 }) });
  assert.equal(resendSlot(sooner, visible(sooner), 0).mode, "countdown");
});

test("expiry is warned before, then `expired` goes back to the number without taking focus", () => {
  let state = run([], { first: snapshot({ resend_in: null, expires_in: 61 }) });
  state = update(state, { type: "tick", now: 1000 });
  assert.deepEqual(said(state), ["Expires in 1:00."]);
  const expired = snapshot({ status: "expired", expires_in: null, resend_in: null });
  state = update(state, frame({ type: "expired", verification: expired }));
  assert.equal(state.step, "number");
  assert.deepEqual(kinds(state, "focus"), []);
  assert.deepEqual(kinds(state, "rescue"), [["numberTitle"]]);
  assert.deepEqual(kinds(state, "phone"), [[PHONE]]);
  assert.equal(state.errors.status.message, "Expired.");
  assert.deepEqual(said(state), ["Expired."]);
});

test("a wrong code is shown beside the field with the attempts left, and the field emptied", () => {
  let state = run([{ type: "code_input", value: "11111" }], { first: snapshot() });
  assert.deepEqual(sent(state), [{ type: "verify", code: "11111" }]);
  assert.equal(state.pending.verify, true);
  const error = {
    type: "error",
    code: "PHONE_CODE_INVALID",
    message: "Wrong code.",
    verification: snapshot({ attempts_left: 4 }),
  };
  state = update(state, frame(error));
  assert.equal(state.pending.verify, undefined);
  assert.deepEqual(state.errors.code, {
    message: "Wrong code.",
    extra: "4 attempts left",
    phone: null,
    until: null,
  });
  assert.deepEqual(kinds(state, "alert"), [["Wrong code. 4 attempts left"]]);
  assert.deepEqual(kinds(state, "clearCode"), [[]]);
  assert.deepEqual(kinds(state, "focus"), [["codeInput"]]);
  // The same code typed again is sent again (it was cleared); typing clears the error.
  state = update(state, { type: "code_input", value: "1" });
  assert.equal(state.errors.code, undefined);
});

test("auto-submit sends a complete digit code once; the Verify button checks the length", () => {
  let state = run([{ type: "code_input", value: "123" }], { first: snapshot() });
  assert.deepEqual(sent(state), []);
  state = update(state, { type: "verify", value: "123" });
  assert.equal(state.errors.code.message, "The code has 5 characters.");
  state = update(state, { type: "code_input", value: "12345" });
  assert.deepEqual(sent(state), [{ type: "verify", code: "12345" }]);
  state = update(state, { type: "code_input", value: "12345" });
  assert.deepEqual(sent(state), []);
});

test("a flood wait on one number blocks only that number", () => {
  let state = run([{ type: "send_code", phone: "+999 66 1 9001" }]);
  const flood = {
    type: "error",
    code: "FLOOD_WAIT",
    message: "Telegram asks us to wait.",
    retry_after: 30,
    verification: snapshot({ phone_number: "+999 66 1 9001", status: "failed", code: null }),
  };
  state = update(state, frame(flood, 1000));
  assert.equal(state.step, "number");
  assert.equal(sendWait(state, "+9996619001", 1000), 30);
  assert.equal(sendWait(state, "+999 66 7 2201", 1000), 0);
  assert.equal(state.errors.phone.message, "Telegram asks us to wait.");
  assert.deepEqual(kinds(state, "alert"), [["Telegram asks us to wait. Try again in 0:30."]]);
  assert.deepEqual(kinds(state, "focus"), [["phoneInput", true]]);

  // Another number clears the error and can be sent; the limited one cannot.
  state = update(state, { type: "phone_input", value: "+999 66 7 2201", now: 2000 });
  assert.equal(state.errors.phone, undefined);
  state = update(state, { type: "send_code", phone: "+999 66 1 9001", now: 2000 });
  assert.deepEqual(sent(state), []);
  state = update(state, { type: "send_code", phone: "+999 66 7 2201", now: 2000 });
  assert.deepEqual(sent(state), [{ type: "send_code", phone_number: "+999 66 7 2201" }]);
  // Once the wait is over the number is free again.
  assert.equal(sendWait(state, "+9996619001", 31_000), 0);
});

test("our own rate limit says what was limited and when, in one sentence", () => {
  let state = run([{ type: "send_code", phone: "+999 66 7 2202" }]);
  const limited = { type: "error", code: "RATE_LIMITED", message: "Too many attempts.", retry_after: 61 };
  state = update(state, frame(limited));
  assert.equal(state.errors.phone.message, "Too many codes. New code in {time}.");
  assert.deepEqual(kinds(state, "alert"), [["Too many codes. New code in 1:01."]]);
  assert.equal(sendWait(state, "+999 66 7 2202", 0), 61);
  // The error goes when its wait is over.
  state = update(state, { type: "tick", now: 61_000 });
  assert.equal(state.errors.phone, undefined);
  assert.equal(state.sendBlocked, null);
});

test("a limit on the number holds that number; a limit on the network holds every number", () => {
  let state = run([{ type: "send_code", phone: "+999 66 7 2202" }]);
  const limited = { type: "error", code: "RATE_LIMITED", message: "For this number.", retry_after: 30 };
  state = update(state, frame({ ...limited, limit: "phone" }));
  assert.equal(state.errors.phone.message, "Too many for this number. New code in {time}.");
  assert.equal(sendWait(state, "+999 66 7 2202", 0), 30);
  assert.equal(sendWait(state, "+999 66 7 2203", 0), 0);

  state = update(state, { type: "send_code", phone: "+999 66 7 2203", now: 0 });
  state = update(state, frame({ ...limited, limit: "address", retry_after: 90 }));
  assert.deepEqual(kinds(state, "alert"), [["Too many from your network. New code in 1:30."]]);
  assert.equal(sendWait(state, "+999 66 7 2203", 0), 90);
  assert.equal(sendWait(state, "+999 66 1 9001", 0), 90);
});

test("a code that expired on verify ends on the number, with the error at the top", () => {
  let state = run([{ type: "code_input", value: "77777" }], { first: snapshot() });
  const error = {
    type: "error",
    code: "PHONE_CODE_EXPIRED",
    message: "This code has expired.",
    verification: snapshot({ status: "expired", expires_in: 0 }),
  };
  state = update(state, frame(error));
  assert.equal(state.step, "number");
  assert.equal(state.errors.status.message, "This code has expired.");
  assert.equal(state.errors.status.info, undefined);
  assert.deepEqual(kinds(state, "rescue"), [["phoneInput"]]);
  assert.deepEqual(kinds(state, "phone"), [[PHONE]]);
});

test("too many wrong codes go back to the number, prefilled and focused", () => {
  const error = { type: "error", code: "TOO_MANY_ATTEMPTS", message: "Too many tries." };
  const state = run([frame(error)], { first: snapshot() });
  assert.equal(state.step, "number");
  assert.equal(state.errors.status.message, "Too many tries.");
  assert.deepEqual(kinds(state, "phone"), [[PHONE]]);
  assert.deepEqual(kinds(state, "focus"), [["phoneInput"]]);
});

test("Cancel and Change number both end on the number with the number kept", () => {
  const cancelled = snapshot({ status: "cancelled", expires_in: null, resend_in: null });
  // Cancel: the server's `cancelled` ends the step; focus goes to the phone field.
  let state = run([{ type: "cancel" }], { first: snapshot() });
  assert.deepEqual(sent(state), [{ type: "cancel" }]);
  assert.equal(state.step, "code");
  state = update(state, frame({ type: "cancelled", verification: cancelled }));
  assert.equal(state.step, "number");
  assert.deepEqual(kinds(state, "phone"), [[PHONE]]);
  assert.deepEqual(kinds(state, "rescue"), [["phoneInput"]]);
  assert.equal(state.errors.status.message, "Cancelled.");

  // Change number: back at once, focused; the `cancelled` that follows is not news.
  state = run([{ type: "change_number" }], { first: snapshot() });
  assert.deepEqual(sent(state), [{ type: "cancel" }]);
  assert.equal(state.step, "number");
  assert.deepEqual(kinds(state, "phone"), [[PHONE]]);
  assert.deepEqual(kinds(state, "focus"), [["step"]]);
  state = update(state, frame({ type: "cancelled", verification: cancelled }));
  assert.equal(state.step, "number");
  assert.equal(state.errors.status, undefined);
  assert.deepEqual(kinds(state, "phone"), []);
});

test("verified shows the done step and says so; verify another empties the number", () => {
  const verified = snapshot({ status: "verified", expires_in: null, resend_in: null });
  let state = run([frame({ type: "verified", verification: verified })], { first: snapshot() });
  assert.equal(state.step, "done");
  assert.deepEqual(said(state), ["+999 66 2 1234 verified."]);
  assert.deepEqual(kinds(state, "silence"), [[]]);
  state = update(state, { type: "verify_another" });
  assert.equal(state.step, "number");
  assert.deepEqual(kinds(state, "phone"), [[""]]);
});

test("a delivery report updates the snapshot, with or without one in the frame", () => {
  let state = run([frame({ type: "delivery", status: "read" })], {
    first: snapshot({ transport: "gateway", delivery: "sent" }),
  });
  assert.equal(visible(state).delivery, "read");
  assert.deepEqual(kinds(state, "focus"), []);
  state = update(state, frame({ type: "whatever_comes_next", verification: null }));
  assert.equal(visible(state).delivery, "read");
});

test("passport_request keeps the link for the step and moves to it", () => {
  const waiting = snapshot({ method: "passport", status: "waiting", code: null, next_type: null });
  let state = run([{ type: "passport_start" }]);
  assert.deepEqual(sent(state), [{ type: "passport_start" }]);
  assert.deepEqual(kinds(state, "loadPassport"), [[]]);
  const request = { type: "passport_request", verification: waiting, url: "tg://x", qr: "<svg/>" };
  state = update(state, frame(request));
  assert.equal(state.step, "passport");
  assert.deepEqual(state.passportLink, { id: "v1", url: "tg://x", qr: "<svg/>" });
  assert.equal(state.pending.passport, false);
});

test("offline, an action says so beside it and is kept; reconnecting clears that", () => {
  let state = run([{ type: "close", code: 1012, random: 0 }], { first: snapshot() });
  assert.equal(state.connection, "closed");
  assert.equal(state.banner.text, "Reconnecting…");
  state = update(state, { type: "code_input", value: "77777" });
  assert.deepEqual(sent(state), []);
  assert.equal(state.errors.code.message, "Not connected.");
  state = update(state, { type: "open" });
  assert.equal(state.connection, "open");
  assert.ok(!state.banner);
  assert.equal(state.errors.code, undefined);
  state = update(state, { type: "verify", value: "77777" });
  assert.deepEqual(sent(state), [{ type: "verify", code: "77777" }]);
});

test("each close code has its message; only 4403 stops reconnecting and offers a reload", () => {
  for (const [code, text] of [
    [4008, "Too many messages."],
    [4500, "Cannot keep track."],
  ]) {
    const state = run([{ type: "close", code, random: 0 }]);
    assert.equal(state.connection, "closed");
    assert.deepEqual(state.banner, { text, error: true, reload: false });
    assert.deepEqual(said(state), [text]);
    assert.equal(kinds(state, "reconnect").length, 1);
  }
  const owner = run([{ type: "close", code: 4403 }]);
  assert.equal(owner.connection, "ended");
  assert.deepEqual(owner.banner, { text: "Signed in elsewhere.", error: true, reload: true });
  assert.deepEqual(kinds(owner, "reconnect"), []);
});

test("a socket closed again and again waits longer each time, even though each one opened", () => {
  let state = run([]);
  const delays = [];
  for (let i = 0; i < 4; i += 1) {
    state = update(state, { type: "close", code: 4008, random: 1 });
    delays.push(kinds(state, "reconnect")[0][0]);
    state = update(state, { type: "open" });
  }
  assert.deepEqual(delays, [2000, 4000, 8000, 16_000]);
});

test("a socket refused before its handshake (4003 origin, 4013 too many) retries quietly", () => {
  for (const code of [4003, 4013]) {
    let state = initial(STRINGS);
    state = update(state, { type: "close", code, random: 1 });
    assert.equal(state.connection, "closed");
    assert.ok(!state.banner);
    assert.deepEqual(kinds(state, "reconnect"), [[1000]]);
    state = update(state, { type: "close", code, random: 1 });
    assert.deepEqual(kinds(state, "reconnect"), [[2000]]);
  }
  // Once a socket has opened, losing it says "Reconnecting…" (once), and no reload is offered.
  const state = run([{ type: "close", code: 4013, random: 0 }]);
  assert.deepEqual(state.banner, { text: "Reconnecting…", error: false, reload: false });
  assert.deepEqual(said(state), ["Reconnecting…"]);
});

test("a handshake refused three times says what to check, and shows the first step", () => {
  let state = initial(STRINGS);
  for (let i = 0; i < 2; i += 1) state = update(state, { type: "close", code: 1006, random: 0 });
  assert.ok(!state.banner);
  state = update(state, { type: "connecting" });
  assert.equal(state.banner.text, "Connecting…");
  state = update(state, { type: "close", code: 1006, random: 0 });
  assert.deepEqual(state.banner, { text: "Refused.", error: true, reload: undefined });
  assert.equal(state.step, "number");
  assert.equal(kinds(state, "reconnect").length, 1);
});

test("backoff doubles up to 30 s, with jitter in its upper half", () => {
  assert.equal(backoff(1, 0), 500);
  assert.equal(backoff(1, 1), 1000);
  assert.equal(backoff(4, 0.5), 6000);
  assert.equal(backoff(20, 1), 30_000);
  assert.equal(backoff(20, 0), 15_000);
});

test("no WebSocket at all is said, and the first step shown", () => {
  const state = update(initial(STRINGS), { type: "unavailable" });
  assert.equal(state.banner.text, "No WebSockets.");
  assert.equal(state.step, "number");
});
