// The page's one reducer: server frames, the visitor's intents and socket events in, the next state
// out. Pure: what the page must do besides painting (focus, speak, send, fill a field) is listed in
// `effects`. The server owns every decision and deadline (docs/protocol.md).
import { backoff, clock, deadline, resendSlot, secondsLeft as left } from "./verify_timers.js";
import { format } from "./verify_text.js";

const DIGIT_TYPES = "app sms call flash_call missed_call fragment_sms firebase_sms".split(" ");
const ANNOUNCE_AT = [60, 30, 10]; // countdown seconds read out; the others are only shown
const WARN_AT = [60, 15];
// [message, reconnect]. 4403: the session's owner changed, so only a reload has the new cookie.
const CLOSED = { 4008: ["closed_frames", 1], 4403: ["closed_owner", 0], 4500: ["closed_session", 1] };
const ON_SCREEN = { phone: "number", code: "code", resend: "code", passport: "number" };

export const digitsOf = (text) => String(text ?? "").replace(/\D/g, "");
export const isPassport = (v) => v?.method === "passport";
export const visible = (s) => (s.snapshot?.id !== s.dismissedId ? s.snapshot : null);

export function stepFor(v) {
  if (!v) return "number";
  if (v.status === "verified") return "done";
  if (isPassport(v)) return ["waiting", "received"].includes(v.status) ? "passport" : "number";
  // A resend briefly reports `sending` while the previous code is still on screen.
  return v.status === "code_sent" || (v.status === "sending" && v.code) ? "code" : "number";
}

export function codeShape(v) {
  const { type, length } = v.code || {};
  const digits = DIGIT_TYPES.includes(type);
  const size = Number(length) > 0 ? Number(length) : null;
  return { type, digits, length: size, autoSubmit: digits && size !== null };
}

// Seconds before a code can be sent to `phone`: a wait applies to the number it was asked for.
export function sendWait(s, phone, now) {
  const blocked = s.sendBlocked;
  return blocked && (!blocked.phone || blocked.phone === digitsOf(phone)) ? left(blocked.until, now) : 0;
}

export const t = (s, key, params) => format(s.strings[key] ?? key, params);

// The string for the next delivery (`resend_call`, `countdown_call`…); SMS wording for a new type.
export const nextText = (s, kind, type, params) =>
  t(s, `${kind}_${type}` in s.strings ? `${kind}_${type}` : `${kind}_sms`, params);

// `message` may hold `{time}`: the wait left, counted down in place (no second "try again").
export function errorText(s, error, now) {
  const wait = left(error.until, now);
  if (error.message.includes("{time}")) return format(error.message, { time: clock(wait) });
  return wait ? `${error.message} ${t(s, "retry_in", { time: clock(wait) })}` : error.message;
}

export function codeDescription(s, v) {
  const { type, length = "", prefix = "", beginning = "" } = v.code || {};
  const params = { phone: v.phone_number, length, prefix, beginning };
  const key = `code_${type}`;
  if (type === "sms_word" || type === "sms_phrase") return [t(s, beginning ? key : `${key}_plain`), params];
  return [s.strings[key] ?? t(s, "code_unknown"), params];
}

export const initial = (strings) => ({
  strings,
  received: false, // a first `state` frame arrived
  snapshot: null,
  dismissedId: null, // a verification the visitor moved on from
  step: null,
  connection: "closed", // or "open", or "ended" (no reconnect)
  banner: null, // {text, error, reload}
  failures: 0,
  refusals: 0,
  everOpened: false,
  pending: {}, // send, verify, resend, passport: asked for, not answered yet
  lastAction: null,
  lastSentPhone: "",
  phone: "", // the phone field's value
  resendAt: null,
  expiresAt: null,
  sendBlocked: null, // {phone (digits), until}
  verifyBlockedUntil: null,
  resendUnavailableId: null,
  codeExpiredId: null,
  codeKey: null, // which code the code field is set up for
  lastSubmitted: null,
  announced: null,
  warned: null,
  resendShown: false,
  passportLink: null, // {id, url, qr}
  passportOff: false,
  errors: {}, // phone, code, resend, passport, status -> {message, extra, phone, until, offline, info}
  effects: [],
});

const fx = (s, ...effect) => s.effects.push(effect);
const say = (s, text) => fx(s, "announce", text);

function fill(s, phone) {
  s.phone = phone;
  fx(s, "phone", phone);
}

function accept(s, v) {
  if (v && s.snapshot?.id !== v.id) {
    s.resendUnavailableId = s.codeExpiredId = null;
    s.pending.verify = s.pending.resend = false;
  }
  s.snapshot = v ?? null;
  s.resendAt = deadline(v?.resend_in, s.now);
  s.expiresAt = deadline(v?.expires_in, s.now);
}

function showError(s, slot, message, { retryAfter, extra = "", phone = null } = {}) {
  const error = { message, extra, phone, until: retryAfter ? deadline(retryAfter, s.now) : null };
  s.errors[slot] = error;
  fx(s, "alert", [errorText(s, error, s.now), extra].filter(Boolean).join(" "));
}

function clearErrors(s) {
  s.errors = {};
  fx(s, "silence");
}

function showStatus(s, key, speak = true) {
  const message = t(s, key);
  s.errors.status = { message, info: true };
  if (speak) say(s, message);
}

const endedKey = (v) => (isPassport(v) ? "passport_expired" : "status_expired");

// Sends `message` if the socket is open; else says so beside what the visitor tried to send (what
// they typed stays for when we are back).
function send(s, message, quiet) {
  if (s.connection !== "open") {
    if (!quiet) {
      const slot = { code: "code", passport: "status" }[s.step] ?? "phone";
      showError(s, slot, t(s, "not_connected"));
      s.errors[slot].offline = true;
    }
    return false;
  }
  fx(s, "send", message);
  if (message.type !== "state") s.lastAction = message.type;
  return true;
}

// Moves to the step the state calls for. `focus`: to the new step (the visitor's own action).
// Otherwise focus moves only if it was in the card and its element went: to `rescue[step]`, else to
// the step's heading, never to a field where typing would overwrite something.
function show(s, { focus = true, rescue = {} } = {}) {
  const v = visible(s);
  const step = stepFor(v);
  const changed = step !== s.step;
  // Another tab's send, or a verification that ended without success: its number again.
  const ended = changed && ["expired", "failed", "cancelled"].includes(v?.status);
  if (step === "number" && v && !isPassport(v) && (v.status === "sending" || ended)) {
    if (s.phone !== v.phone_number) fill(s, v.phone_number);
  }
  const key = step === "code" && [v.id, v.code?.type, v.code?.length, v.code?.prefix].join("|");
  if (key && key !== s.codeKey) {
    s.codeKey = key;
    s.lastSubmitted = null;
    delete s.errors.code;
    fx(s, "clearCode");
  }
  s.step = step;
  if (changed && focus) fx(s, "focus", "step");
  else fx(s, "rescue", rescue[step] ?? `${step}Title`);
}

function submit(s, raw, auto) {
  const v = visible(s);
  if (!v || s.pending.verify || s.codeExpiredId === v.id || left(s.verifyBlockedUntil, s.now)) return;
  const shape = codeShape(v);
  const code = shape.digits ? digitsOf(raw) : raw.trim().replace(/\s+/g, " ");
  const short = shape.digits && shape.length && code.length !== shape.length;
  if (!code || short) {
    const problem = code ? t(s, "code_wrong_length", { length: shape.length }) : t(s, "code_required");
    if (!auto) showError(s, "code", problem);
  } else if (!(auto && code === s.lastSubmitted) && send(s, { type: "verify", code })) {
    s.lastSubmitted = code;
    s.pending.verify = true;
    delete s.errors.code;
    show(s, { focus: false });
  }
}

// Cancels the visible verification and goes back to the number at once; the `cancelled` frame that
// follows is expected, not news.
function leave(s, prefill) {
  const v = visible(s);
  if (!v || !send(s, { type: "cancel" })) return;
  s.dismissedId = v.id;
  clearErrors(s);
  if (prefill) fill(s, v.phone_number);
  show(s);
}

function setBanner(s, key, error, reload, speak = error) {
  s.banner = { text: t(s, key), error, reload };
  if (speak) say(s, s.banner.text);
}

// Nothing can be sent; the first step is shown so the page is not blank.
function unavailable(s, key) {
  setBanner(s, key, true);
  if (!s.received) show(s, { focus: false });
}

function retry(s, quiet, random = 0.5) {
  s.failures += 1;
  // A handshake that never succeeds is a refusal (an origin the site does not allow) or a network
  // that blocks WebSockets: neither is the browser's fault.
  if (!s.everOpened && s.failures >= 3) unavailable(s, "handshake_refused");
  else if (s.everOpened && !quiet) setBanner(s, "reconnecting", false, false, s.failures === 1);
  fx(s, "reconnect", backoff(s.failures, random));
}

function onError(s, frame) {
  const code = String(frame.code || "INTERNAL");
  const retryAfter = Number(frame.retry_after) > 0 ? Number(frame.retry_after) : null;
  const action = s.lastAction;
  // Our own send limits: what was limited (codes, not "attempts") and when, in one sentence.
  const limitedSend = code === "RATE_LIMITED" && retryAfter && action !== "verify";
  const message = limitedSend ? t(s, "rate_limited") : frame.message || t(s, "error_fallback");
  const phone = action === "send_code" ? digitsOf(s.lastSentPhone) : null;
  if ("verification" in frame) accept(s, frame.verification);
  let target = { send_code: "phone", verify: "code", resend: "resend" }[action] ?? "status";
  if (code.startsWith("PASSPORT_") || action === "passport_start") target = "passport";
  else if (code.startsWith("PHONE_NUMBER_")) target = "phone";
  else if (code.startsWith("PHONE_CODE_")) target = "code";
  else if (code === "RESEND_NOT_AVAILABLE" || code === "SEND_CODE_UNAVAILABLE") target = "resend";
  else if (code === "TOO_MANY_ATTEMPTS") target = "status";
  s.pending = {};
  if (code === "PASSPORT_UNAVAILABLE") s.passportOff = true;

  const v = visible(s);
  if (code === "TOO_MANY_ATTEMPTS" && v && stepFor(v) === "code") {
    // The server ended this verification: back to the number, prefilled.
    s.dismissedId = v.id;
    fill(s, v.phone_number);
  }
  if (code === "PHONE_CODE_EXPIRED" && v) s.codeExpiredId = v.id;
  if (code === "SEND_CODE_UNAVAILABLE" && v) s.resendUnavailableId = v.id;
  const until = retryAfter && deadline(retryAfter, s.now);
  if (code === "RESEND_NOT_AVAILABLE" && until) s.resendAt = until;
  if ((code === "FLOOD_WAIT" || code === "RATE_LIMITED") && until) {
    if (action === "verify") s.verifyBlockedUntil = until;
    else if (action === "resend") s.resendAt = until;
    // Only the number that was limited waits: the server takes another one straight away.
    else if (target === "phone" || target === "status") s.sendBlocked = { phone, until };
  }
  if (code === "NO_ACTIVE_VERIFICATION") send(s, { type: "state" }, true);

  show(s, { focus: false, rescue: { number: "phoneInput" } });

  // Beside its cause when that is on screen, else at the top of the card.
  const slot = ON_SCREEN[target] === s.step ? target : "status";
  let extra = "";
  if (slot === "code" && code === "PHONE_CODE_INVALID" && v?.attempts_left != null) {
    extra = s.strings.attempts_left?.[v.attempts_left] ?? t(s, "attempts_left_any", { count: v.attempts_left });
  }
  if (slot === "code" && (code === "PHONE_CODE_INVALID" || code === "PHONE_CODE_EMPTY")) {
    s.lastSubmitted = null;
    fx(s, "clearCode");
  }
  const timed = slot !== "resend" || code !== "RESEND_NOT_AVAILABLE";
  showError(s, slot, message, { retryAfter: timed && retryAfter, extra, phone: slot === "phone" && phone });
  if (slot === "phone") fx(s, "focus", "phoneInput", true);
  if (slot === "code") fx(s, "focus", code === "PHONE_CODE_EXPIRED" ? "sendNewCode" : "codeInput");
  if (slot === "passport") fx(s, "focus", "passportStart");
  if (slot === "status" && s.step === "number" && code === "TOO_MANY_ATTEMPTS") fx(s, "focus", "phoneInput");
}

function onFrame(s, frame) {
  const v = frame.verification;
  const previousStatus = visible(s)?.status;
  const type = frame.type;
  if (type === "error") return onError(s, frame);
  if (type === "state") {
    const first = !s.received;
    s.received = true;
    accept(s, v);
    s.pending.send = false;
    const shown = first && visible(s);
    if (shown?.status === "expired") showStatus(s, endedKey(shown), false);
    if (shown?.status === "failed" && (shown.code || isPassport(shown))) {
      showStatus(s, isPassport(shown) ? "passport_failed" : "status_failed", false);
    }
    show(s);
  } else if (type === "code_sent") {
    const wasCode = s.step === "code";
    accept(s, v);
    s.pending = { passport: s.pending.passport };
    s.resendUnavailableId = s.codeExpiredId = s.announced = null;
    s.resendShown = false;
    clearErrors(s);
    show(s);
    if (wasCode && s.step === "code") {
      // A new delivery (e.g. the call after the SMS): say where the code went now.
      say(s, format(...codeDescription(s, v)));
      fx(s, "focus", "codeInput");
    }
  } else if (type === "passport_request") {
    s.passportLink = { id: v?.id, url: frame.url, qr: frame.qr };
    s.pending.passport = false;
    accept(s, v);
    s.warned = null;
    clearErrors(s);
    show(s);
  } else if (type === "delivery") {
    if ("verification" in frame) accept(s, v);
    else if (s.snapshot) s.snapshot = { ...s.snapshot, delivery: frame.status };
    show(s, { focus: false });
  } else if (type === "resend_available") {
    if ("verification" in frame) accept(s, v);
    s.resendAt = s.now;
    show(s);
  } else if (type === "verified") {
    accept(s, v);
    s.pending.verify = false;
    clearErrors(s);
    show(s);
    if (v) say(s, t(s, "verified_announce", { phone: v.phone_number }));
  } else if (type === "cancelled" || type === "expired") {
    const dismissed = v?.id && v.id === s.dismissedId;
    accept(s, v);
    s.pending.verify = s.pending.resend = false;
    if (dismissed || previousStatus === v?.status) return show(s);
    clearErrors(s);
    // Neither takes a visitor who is typing by surprise: focus moves only if it was lost with the
    // code step, to the phone field after their own Cancel, else to the heading.
    const own = type === "cancelled" && s.lastAction === "cancel";
    const rescue = own ? "phoneInput" : isPassport(v) && "passportStart";
    show(s, { focus: false, rescue: rescue ? { number: rescue } : {} });
    showStatus(s, type === "cancelled" ? "status_cancelled" : endedKey(v));
  }
  // Other types are additions from a newer server: ignored.
}

const handlers = {
  frame: (s, e) => e.frame && typeof e.frame === "object" && onFrame(s, e.frame),
  open(s) {
    Object.assign(s, { connection: "open", failures: 0, everOpened: true, banner: null });
    for (const slot in s.errors) if (s.errors[slot].offline) delete s.errors[slot];
  },
  close(s, e) {
    const [key, reconnect] = CLOSED[e.code] ?? [];
    s.connection = reconnect === 0 ? "ended" : "closed";
    s.pending = {};
    if (s.received) show(s, { focus: false });
    if (!key) return retry(s, false, e.random);
    setBanner(s, key, true, !reconnect);
    // Said once; the retries keep it rather than "Reconnecting…". A socket closed again and
    // again waits longer each time, even though each one opened.
    if (reconnect) {
      s.failures = Math.max(s.failures, ++s.refusals);
      retry(s, true, e.random);
    }
  },
  // Said only when connecting takes long enough to be noticed.
  connecting: (s) => s.everOpened || s.banner || setBanner(s, "connecting", false),
  unavailable: (s) => unavailable(s, "websocket_unavailable"),
  passport_failed(s) {
    s.pending.passport = false;
    setBanner(s, "error_fallback", true, true);
  },
  send_code(s, e) {
    const phone = e.phone.trim();
    clearErrors(s);
    if (!phone) {
      showError(s, "phone", t(s, "phone_required"));
      fx(s, "focus", "phoneInput");
    } else if (!sendWait(s, phone, s.now)) {
      s.lastSentPhone = phone;
      if (send(s, { type: "send_code", phone_number: phone })) {
        s.pending.send = true;
        show(s, { focus: false });
      }
    }
  },
  phone_input(s, e) {
    s.phone = e.value;
    const error = s.errors.phone;
    // A wait for one number says nothing about another one.
    if (error && (!error.until || (error.phone && error.phone !== digitsOf(e.value)))) {
      delete s.errors.phone;
    }
  },
  code_input(s, e) {
    const v = visible(s);
    if (!v) return;
    if (s.errors.code && !s.errors.code.until) delete s.errors.code;
    const shape = codeShape(v);
    if (shape.autoSubmit && e.value.length === shape.length) submit(s, e.value, true);
  },
  verify: (s, e) => submit(s, e.value, false),
  resend(s) {
    delete s.errors.resend;
    if (send(s, { type: "resend" })) {
      s.pending.resend = true;
      fx(s, "focus", "codeInput");
    }
  },
  send_new_code(s) {
    const v = visible(s);
    if (v && send(s, { type: "send_code", phone_number: v.phone_number })) {
      s.pending.send = true;
      clearErrors(s);
    }
  },
  change_number: (s) => leave(s, true),
  leave: (s) => leave(s, false),
  cancel: (s) => send(s, { type: "cancel" }),
  passport_start(s) {
    clearErrors(s);
    if (send(s, { type: "passport_start" })) {
      s.pending.passport = true;
      fx(s, "loadPassport"); // while the server prepares the request
      show(s, { focus: false });
    }
  },
  verify_another(s) {
    const v = visible(s);
    if (v) s.dismissedId = v.id;
    clearErrors(s);
    fill(s, "");
    show(s);
  },
  send: (s, e) => send(s, e.message, e.quiet),
};

// Every event ends here: waits that are over are dropped, and the countdowns worth saying aloud
// are said, once.
function tick(s) {
  const now = s.now;
  if (s.sendBlocked && !left(s.sendBlocked.until, now)) s.sendBlocked = null;
  if (!left(s.verifyBlockedUntil, now)) s.verifyBlockedUntil = null;
  for (const [slot, { message, until }] of Object.entries(s.errors)) {
    // The wait was the message: once over, there is nothing left to say.
    if (until != null && message.includes("{time}") && !left(until, now)) delete s.errors[slot];
  }
  const v = visible(s);
  const expires = left(s.expiresAt, now);
  const warn = (key) => {
    if (WARN_AT.includes(expires) && s.warned !== expires) {
      s.warned = expires;
      say(s, t(s, key, { time: clock(expires) }));
    }
  };
  if (v && s.step === "code") {
    const { mode, left: wait } = resendSlot(s, v, now);
    if (mode === "countdown" || mode === "hidden") s.resendShown = false;
    if (mode === "countdown" && ANNOUNCE_AT.includes(wait) && s.announced !== wait) {
      s.announced = wait;
      say(s, nextText(s, "countdown", v.next_type, { time: clock(wait) }));
    }
    if (mode === "button" && !s.resendShown) {
      s.resendShown = true;
      say(s, t(s, "resend_ready", { action: nextText(s, "resend", v.next_type) }));
    }
    warn("expires_soon");
  }
  if (v && s.step === "passport" && v.status !== "received") warn("passport_expires_soon");
}

// The reducer. `event.now` (ms, monotonic) dates every deadline; `effects` lists this event's.
export function update(state, event) {
  const s = { ...state, pending: { ...state.pending }, errors: { ...state.errors }, effects: [] };
  s.now = event.now ?? 0;
  handlers[event.type]?.(s, event);
  tick(s);
  return s;
}
