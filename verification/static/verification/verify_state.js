// The page's reducer: frames, intents and socket events in, the next state and its effects out.
import { backoff, clock, deadline, resendSlot, secondsLeft as left } from "./verify_timers.js";

const DIGIT_TYPES = "app sms call flash_call missed_call fragment_sms firebase_sms".split(" ");
// [message, reconnect]. 4403: the session's owner changed, so only a reload has the new cookie.
const CLOSED = { 4008: ["closed_frames", 1], 4403: ["closed_owner", 0], 4500: ["closed_session", 1] };

const format = (template, params = {}) =>
  String(template).replace(/\{(\w+)\}/g, (match, name) => (name in params ? params[name] : match));
export const t = (s, key, params) => format(s.strings[key] ?? key, params);
const known = (s, key, otherwise) => (key in s.strings ? key : otherwise);
export const nextText = (s, kind, type, params) =>
  t(s, known(s, `${kind}_${type}`, `${kind}_sms`), params);
const digitsOf = (text) => String(text).replace(/\D/g, "");
const isPassport = (v) => v?.method === "passport";
export const visible = (s) => (s.snapshot?.id !== s.dismissedId ? s.snapshot : null);

function stepFor(v) {
  if (!v) return "number";
  if (v.status === "verified") return "done";
  if (isPassport(v)) return ["waiting", "received"].includes(v.status) ? "passport" : "number";
  // A resend reports `sending` while the previous code is still shown.
  return v.status === "code_sent" || (v.status === "sending" && v.code) ? "code" : "number";
}

export function codeShape(v) {
  const { type, length } = v.code || {};
  return { type, digits: DIGIT_TYPES.includes(type), length: Math.max(0, length) || null };
}

// A wait applies to the number it was asked for.
export function sendWait(s, phone, now) {
  const { phone: only, until } = s.sendBlocked || {};
  return !only || only === digitsOf(phone) ? left(until, now) : 0;
}

// A message holding `{time}` counts down in place (no second "try again").
export function errorText(s, { message, until }, now) {
  const wait = left(until, now);
  if (message.includes("{time}")) return format(message, { time: clock(wait) });
  return wait ? `${message} ${t(s, "retry_in", { time: clock(wait) })}` : message;
}

export function codeDescription(s, v) {
  const { type, beginning } = v.code || {};
  const params = { phone: v.phone_number };
  for (const name of ["length", "prefix", "beginning"]) params[name] = v.code?.[name] ?? "";
  const key = `code_${type}`;
  const word = /^sms_(word|phrase)$/.test(type);
  return [t(s, word ? (beginning ? key : `${key}_plain`) : known(s, key, "code_unknown")), params];
}

export const initial = (strings) =>
  ({ strings, step: null, connection: "closed", failures: 0, refusals: 0, pending: {}, phone: "",
    errors: {}, effects: [] });

const fx = (s, ...effect) => s.effects.push(effect);
const say = (s, text) => fx(s, "announce", text);
const acceptFrom = (s, frame) => "verification" in frame && (accept(s, frame.verification), true);

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

function showError(s, slot, message, retryAfter, extra = "", phone = null) {
  const error = { message, extra, phone, until: retryAfter ? deadline(retryAfter, s.now) : null };
  s.errors[slot] = error;
  fx(s, "alert", [errorText(s, error, s.now), extra].filter(Boolean).join(" "));
}

function clearErrors(s) {
  s.errors = {};
  fx(s, "silence");
}

function showStatus(s, key, speak = true) {
  s.errors.status = { message: t(s, key), info: true };
  if (speak) say(s, s.errors.status.message);
}

const endedKey = (v) => (isPassport(v) ? "passport_expired" : "status_expired");

// While a session is asked for, an act waits for the socket; offline, it is kept and said.
function send(s, message, quiet) {
  const { type } = message;
  if (type === "send_code") s.lastSend = message;
  const queued = s.connection === "waiting" && type !== "state";
  if (queued) s.queued = message;
  else if (s.connection === "open") fx(s, "send", message);
  if (queued || s.connection === "open") {
    if (type !== "state") s.lastAction = type;
    return true;
  }
  const slot = { code: "code", passport: "status" }[s.step] ?? "phone";
  if (!quiet) {
    showError(s, slot, t(s, "not_connected"));
    s.errors[slot].offline = true;
  }
}

// Focus moves to a new step only on the visitor's own act; else, if lost, to `rescue[step]` or
// the heading, never to a field where typing would overwrite something.
function show(s, focus = true, rescue = {}) {
  const v = visible(s);
  const step = stepFor(v);
  const changed = step !== s.step;
  const ended = changed && ["expired", "failed", "cancelled"].includes(v?.status);
  if (step === "number" && (ended || v?.status === "sending") && !isPassport(v)) {
    if (s.phone !== v.phone_number) fill(s, v.phone_number);
  }
  const key = step === "code" && [v.id, v.code?.type, v.code?.length, v.code?.prefix].join();
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
  if (!v || s.pending.verify || s.codeExpiredId === v.id || left(s.verifyBlockedUntil, s.now)) {
    return;
  }
  const { digits, length } = codeShape(v);
  const code = digits ? digitsOf(raw) : raw.trim().replace(/\s+/g, " ");
  if (!code || (digits && length && code.length !== length)) {
    if (!auto) showError(s, "code", t(s, code ? "code_wrong_length" : "code_required", { length }));
  } else if (!(auto && code === s.lastSubmitted) && send(s, { type: "verify", code })) {
    s.lastSubmitted = code;
    s.pending.verify = true;
    delete s.errors.code;
    show(s, false);
  }
}

// Back to the number at once; the `cancelled` frame that follows is not news.
function leave(s, { type }) {
  const v = visible(s);
  if (!v || !send(s, { type: "cancel" })) return;
  s.dismissedId = v.id;
  clearErrors(s);
  if (type === "change_number") fill(s, v.phone_number);
  show(s);
}

function setBanner(s, key, error, reload, speak = error) {
  s.banner = { text: t(s, key), error, reload };
  if (speak) say(s, s.banner.text);
}

function unavailable(s, key) {
  setBanner(s, key, true);
  if (!s.received) show(s, false);
}

function retry(s, quiet, random = 0.5) {
  s.failures += 1;
  // Never opened: a refused origin or a blocking network, not the browser.
  if (!s.everOpened && s.failures >= 3) unavailable(s, "handshake_refused");
  else if (s.everOpened && !quiet) setBanner(s, "reconnecting", false, false, s.failures === 1);
  fx(s, "reconnect", backoff(s.failures, random));
}

function onError(s, frame) {
  const code = String(frame.code || "INTERNAL");
  const is = (...codes) => codes.includes(code);
  if (s.errors.status?.checking) delete s.errors.status;
  if (is("CHALLENGE_REQUIRED") && frame.challenge && s.lastSend) {
    showStatus(s, "checking_browser");
    s.errors.status.checking = true;
    return fx(s, "solve", frame.challenge);
  }
  const retryAfter = frame.retry_after > 0 ? Number(frame.retry_after) : null;
  const until = deadline(retryAfter, s.now);
  const action = s.lastAction;
  const message =
    is("RATE_LIMITED") && until && action !== "verify"
      ? t(s, known(s, `rate_limited_${frame.limit}`, "rate_limited"))
      : frame.message || t(s, "error_fallback");
  acceptFrom(s, frame);
  let target = { send_code: "phone", verify: "code", resend: "resend" }[action] ?? "status";
  if (code.startsWith("PASSPORT_") || action === "passport_start") target = "passport";
  else if (code.startsWith("PHONE_NUMBER_")) target = "phone";
  else if (code.startsWith("PHONE_CODE_")) target = "code";
  else if (is("RESEND_NOT_AVAILABLE", "SEND_CODE_UNAVAILABLE")) target = "resend";
  else if (is("TOO_MANY_ATTEMPTS")) target = "status";
  s.pending = {};
  if (is("PASSPORT_UNAVAILABLE")) s.passportOff = true;

  const v = visible(s);
  if (is("TOO_MANY_ATTEMPTS") && stepFor(v) === "code") {
    s.dismissedId = v.id;
    fill(s, v.phone_number);
  }
  if (is("PHONE_CODE_EXPIRED") && v) s.codeExpiredId = v.id;
  if (is("SEND_CODE_UNAVAILABLE") && v) s.resendUnavailableId = v.id;
  if (is("RESEND_NOT_AVAILABLE") && until) s.resendAt = until;
  // A limit on this browser, network, account or the site holds for every number.
  const anyNumber = is("RATE_LIMITED") && frame.limit && frame.limit !== "phone";
  const phone = action === "send_code" && !anyNumber ? digitsOf(s.lastSend.phone_number) : null;
  if (is("FLOOD_WAIT", "RATE_LIMITED") && until) {
    if (action === "verify") s.verifyBlockedUntil = until;
    else if (action === "resend") s.resendAt = until;
    else if (target === "phone" || target === "status") s.sendBlocked = { phone, until };
  }
  if (is("NO_ACTIVE_VERIFICATION")) send(s, { type: "state" }, true);

  show(s, false, { number: "phoneInput" });

  const onScreen = { phone: "number", code: "code", resend: "code", passport: "number" }[target];
  const slot = onScreen === s.step ? target : "status";
  const count = v?.attempts_left;
  let extra = "";
  if (slot === "code" && is("PHONE_CODE_INVALID") && count != null) {
    extra = s.strings.attempts_left?.[count] ?? t(s, "attempts_left_any", { count });
  }
  if (slot === "code" && is("PHONE_CODE_INVALID", "PHONE_CODE_EMPTY")) {
    s.lastSubmitted = null;
    fx(s, "clearCode");
  }
  const timed = slot !== "resend" || !is("RESEND_NOT_AVAILABLE");
  showError(s, slot, message, timed && retryAfter, extra, slot === "phone" ? phone : null);
  if (slot === "phone") fx(s, "focus", "phoneInput", true);
  if (slot === "code") fx(s, "focus", is("PHONE_CODE_EXPIRED") ? "sendNewCode" : "codeInput");
  if (slot === "passport") fx(s, "focus", "passportStart");
  if (slot === "status" && s.step === "number" && is("TOO_MANY_ATTEMPTS")) {
    fx(s, "focus", "phoneInput");
  }
}

const frames = {
  error: onError,
  state(s, v) {
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
  },
  code_sent(s, v) {
    const wasCode = s.step === "code";
    accept(s, v);
    s.pending = { passport: s.pending.passport };
    s.resendUnavailableId = s.codeExpiredId = s.announced = null;
    s.resendShown = false;
    clearErrors(s);
    show(s);
    if (wasCode && s.step === "code") {
      say(s, format(...codeDescription(s, v)));
      fx(s, "focus", "codeInput");
    }
  },
  passport_request(s, v, frame) {
    s.passportLink = { id: v?.id, url: frame.url, qr: frame.qr };
    s.pending.passport = false;
    accept(s, v);
    s.warned = null;
    clearErrors(s);
    show(s);
  },
  delivery(s, v, frame) {
    if (!acceptFrom(s, frame) && s.snapshot) s.snapshot = { ...s.snapshot, delivery: frame.status };
    show(s, false);
  },
  resend_available(s, v, frame) {
    acceptFrom(s, frame);
    s.resendAt = s.now;
    show(s);
  },
  verified(s, v) {
    accept(s, v);
    s.pending.verify = false;
    clearErrors(s);
    show(s);
    if (v) say(s, t(s, "verified_announce", { phone: v.phone_number }));
  },
  expired(s, v, frame) {
    const before = visible(s)?.status;
    const dismissed = v?.id && v.id === s.dismissedId;
    accept(s, v);
    s.pending.verify = s.pending.resend = false;
    if (dismissed || before === v?.status) return show(s);
    clearErrors(s);
    const cancelled = frame.type === "cancelled";
    const rescue =
      cancelled && s.lastAction === "cancel" ? "phoneInput" : isPassport(v) && "passportStart";
    show(s, false, rescue ? { number: rescue } : {});
    showStatus(s, cancelled ? "status_cancelled" : endedKey(v));
  },
};
frames.cancelled = frames.expired;

const events = {
  // Unknown frame types (a newer server's) are ignored.
  frame: (s, { frame: f }) =>
    f instanceof Object && frames[f.type]?.(s, f.type === "error" ? f : f.verification, f),
  open(s) {
    Object.assign(s, { connection: "open", failures: 0, everOpened: true, banner: null });
    for (const slot in s.errors) if (s.errors[slot].offline) delete s.errors[slot];
    if (s.queued) send(s, s.queued);
    s.queued = null;
  },
  waiting(s) {
    s.connection = "waiting";
    show(s, false);
  },
  session_failed(s, { message, retryAfter }) {
    s.queued = null;
    s.pending = {};
    delete s.errors.status;
    showError(s, "phone", message || t(s, "error_fallback"), retryAfter);
  },
  challenge_solved(s, { answer }) {
    delete s.errors.status;
    const { challenge, ...message } = s.lastSend;
    send(s, { ...message, challenge: answer });
  },
  challenge_failed: (s) => events.session_failed(s, {}),
  close(s, { code, random }) {
    const [key, reconnect] = CLOSED[code] ?? [];
    s.connection = reconnect === 0 ? "ended" : "closed";
    s.pending = {};
    if (s.received) show(s, false);
    if (!key) return retry(s, false, random);
    setBanner(s, key, true, !reconnect);
    // A socket closed again and again waits longer each time, though each opened.
    if (reconnect) {
      s.failures = Math.max(s.failures, ++s.refusals);
      retry(s, true, random);
    }
  },
  connecting: (s) => s.everOpened || s.banner || setBanner(s, "connecting", false),
  unavailable: (s) => unavailable(s, "websocket_unavailable"),
  passport_failed(s) {
    s.pending.passport = false;
    setBanner(s, "error_fallback", true, true);
  },
  send_code(s, { phone }) {
    phone = phone.trim();
    clearErrors(s);
    if (!phone) {
      showError(s, "phone", t(s, "phone_required"));
      fx(s, "focus", "phoneInput");
    } else if (!sendWait(s, phone, s.now) && send(s, { type: "send_code", phone_number: phone })) {
      s.pending.send = true;
      show(s, false);
    }
  },
  phone_input(s, { value }) {
    s.phone = value;
    const error = s.errors.phone;
    if (error && (!error.until || (error.phone && error.phone !== digitsOf(value)))) {
      delete s.errors.phone;
    }
  },
  code_input(s, { value }) {
    const v = visible(s);
    if (!v) return;
    if (!s.errors.code?.until) delete s.errors.code;
    const { digits, length } = codeShape(v);
    if (digits && length && value.length === length) submit(s, value, true);
  },
  verify: (s, { value }) => submit(s, value),
  resend(s) {
    delete s.errors.resend;
    if (send(s, { type: "resend" })) {
      s.pending.resend = true;
      fx(s, "focus", "codeInput");
    }
  },
  send_new_code: (s) => visible(s) && events.send_code(s, { phone: visible(s).phone_number }),
  change_number: leave,
  leave,
  cancel: (s) => send(s, { type: "cancel" }),
  passport_start(s) {
    clearErrors(s);
    if (send(s, { type: "passport_start" })) {
      s.pending.passport = true;
      fx(s, "loadPassport");
      show(s, false);
    }
  },
  verify_another(s) {
    const v = visible(s);
    if (v) s.dismissedId = v.id;
    clearErrors(s);
    fill(s, "");
    show(s);
  },
  send: (s, { message, quiet }) => send(s, message, quiet),
};

function tick(s, now) {
  if (!left(s.sendBlocked?.until, now)) s.sendBlocked = null;
  for (const [slot, { message, until }] of Object.entries(s.errors)) {
    if (until && message.includes("{time}") && !left(until, now)) delete s.errors[slot];
  }
  const v = visible(s);
  const onCode = v && s.step === "code";
  if (onCode) {
    const { mode, left: wait } = resendSlot(s, v, now);
    if (mode === "countdown" || mode === "hidden") s.resendShown = false;
    if (mode === "countdown" && [60, 30, 10].includes(wait) && s.announced !== wait) {
      say(s, nextText(s, "countdown", v.next_type, { time: clock((s.announced = wait)) }));
    }
    if (mode === "button" && !s.resendShown) {
      s.resendShown = true;
      say(s, t(s, "resend_ready", { action: nextText(s, "resend", v.next_type) }));
    }
  }
  const expires = left(s.expiresAt, now);
  const waiting = onCode || (v && s.step === "passport" && v.status !== "received");
  if (waiting && [60, 15].includes(expires) && s.warned !== expires) {
    s.warned = expires;
    say(s, t(s, onCode ? "expires_soon" : "passport_expires_soon", { time: clock(expires) }));
  }
}

// `event.now` (ms, monotonic) dates every deadline.
export function update(state, event) {
  const s = { ...state, pending: { ...state.pending }, errors: { ...state.errors }, effects: [] };
  s.now = event.now ?? 0;
  events[event.type]?.(s, event);
  tick(s, s.now);
  return s;
}
