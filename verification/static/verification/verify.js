// The visitor's verification page: a thin view of the server's state, kept live over a WebSocket
// (protocol v1, docs/protocol.md). The server owns every decision and every deadline; this script
// renders the latest snapshot, counts the server's timers down locally and sends the visitor's
// actions. Reload, reconnect and a second tab all resume from the snapshot the server sends.

// Code types whose code is typed as digits (and may be auto-submitted once complete).
const DIGIT_TYPES = "app sms call flash_call missed_call fragment_sms firebase_sms".split(" ");
// Countdown seconds read out to screen readers; every other second is only shown.
const ANNOUNCE_AT = new Set([60, 30, 10]);
const EXPIRY_WARN_AT = new Set([60, 15]);
// Statuses whose number is shown again in the phone field (cancel and "change number" alike).
const PREFILL_STATUSES = ["expired", "failed", "cancelled"];
const FIRST_CONNECT_TRIES = 3;
const MAX_BACKOFF_SECONDS = 30;
// The server's close codes (docs/protocol.md): what to tell the visitor, and whether to come back.
// 4403: the session's owner changed (sign-in or sign-out), so only a reload has the new cookie.
const CLOSED = {
  4008: { key: "closed_frames", reconnect: true },
  4403: { key: "closed_owner", reconnect: false },
  4500: { key: "closed_session", reconnect: true },
};

const $ = (id) => document.getElementById(id);
const root = document.documentElement;
const app = $("verification");

// Elements by id: `el.phoneInput` is #phone-input; only the ids that differ are listed.
const IDS = {
  card: "verification-card",
  connection: "connection-message",
  status: "status-message",
  alert: "verification-alert",
  announcer: "verification-announcer",
};
const kebab = (name) => name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
const el = new Proxy({}, { get: (found, name) => (found[name] ??= $(IDS[name] ?? kebab(name))) });
const STEPS = ["number", "code", "passport", "done"];
const titleOf = (step) => $(`${step}-title`);

const strings = loadStrings();
const pageTitle = document.title;

// Every string is translated on the server (json_script-style data block in the template).
function loadStrings() {
  try {
    return JSON.parse($("verification-strings").textContent);
  } catch {
    return {}; // a broken block shows keys, never a broken page
  }
}

function format(template, params = {}) {
  return String(template).replace(/\{(\w+)\}/g, (match, name) =>
    name in params ? String(params[name]) : match,
  );
}

function t(key, params) {
  return format(strings[key] ?? key, params);
}

// Fills `node` with a translated sentence, emphasising the substituted values (the number, the
// prefix) without ever parsing them as HTML.
function fillEmphasised(node, template, params) {
  // Splitting on the placeholders leaves their names at the odd indices.
  const parts = template.split(/\{(\w+)\}/).map((part, index) => {
    if (index % 2 === 0) return part;
    if (!(part in params)) return `{${part}}`;
    const value = String(params[part]);
    return element("strong", { className: "verification-nowrap", dir: "ltr", textContent: value });
  });
  node.replaceChildren(...parts);
}

const element = (tag, properties) => Object.assign(document.createElement(tag), properties);

function clock(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

const now = () => performance.now();
const deadlineIn = (seconds) => (seconds == null ? null : now() + Number(seconds) * 1000);
const secondsLeft = (deadline) =>
  deadline == null ? 0 : Math.max(0, Math.ceil((deadline - now()) / 1000));

function attemptsText(count) {
  const forms = strings.attempts_left || {};
  return forms[String(count)] ?? t("attempts_left_any", { count });
}

// State

const state = {
  snapshot: null, // the latest `verification` the server sent (or null)
  received: false, // a first `state` frame arrived
  step: null,
  dismissedId: null, // a finished/abandoned verification the visitor moved on from
  sendPending: false,
  verifyPending: false,
  resendPending: false,
  lastAction: null,
  resendDeadline: null,
  expiresDeadline: null,
  sendBlocked: null, // {phone (digits), until}: a wait applies to the number it was asked for
  lastSentPhone: "",
  verifyBlockedUntil: null,
  resendUnavailableId: null,
  codeExpiredId: null,
  codeKey: null, // which code the input is configured for
  lastSubmittedCode: null,
  lastAnnouncedSecond: null,
  lastExpiryWarning: null,
  resendWasShown: false,
  passportPending: false,
  passportLink: null, // {id, url, qr} of the latest Passport request
  errors: new Map(), // element -> {message, extra, until}
};

// Nothing the visitor asked for is in flight any more (an answer came, or the socket closed).
function settle() {
  state.sendPending = false;
  state.verifyPending = false;
  state.resendPending = false;
  state.passportPending = false;
}

function visibleSnapshot() {
  const v = state.snapshot;
  return v && v.id !== state.dismissedId ? v : null;
}

const isPassport = (v) => v?.method === "passport";

function stepFor(v) {
  if (!v) return "number";
  if (v.status === "verified") return "done";
  if (isPassport(v)) return ["waiting", "received"].includes(v.status) ? "passport" : "number";
  // A resend briefly reports `sending` while the previous code is still on screen.
  if (v.status === "code_sent" || (v.status === "sending" && v.code)) return "code";
  return "number";
}

function acceptSnapshot(v) {
  const previous = state.snapshot;
  state.snapshot = v ?? null;
  if (!v) {
    state.resendDeadline = null;
    state.expiresDeadline = null;
    return;
  }
  if (!previous || previous.id !== v.id) {
    state.resendUnavailableId = null;
    state.codeExpiredId = null;
    state.verifyPending = false;
    state.resendPending = false;
  }
  state.resendDeadline = deadlineIn(v.resend_in);
  state.expiresDeadline = deadlineIn(v.expires_in);
}

// Messages and announcements

// Clearing a live region first makes a repeated message be read again.
const speaking = new Map();

function speak(region, text) {
  silence(region);
  speaking.set(
    region,
    setTimeout(() => {
      region.textContent = text;
    }, 60),
  );
}

// Empties a live region (and drops a message about to be spoken), so nothing stale is read later.
function silence(region) {
  clearTimeout(speaking.get(region));
  region.textContent = "";
}

const announce = (text) => speak(el.announcer, text);
const alertNow = (text) => speak(el.alert, text);

function inputFor(errorEl) {
  if (errorEl === el.phoneError) return el.phoneInput;
  if (errorEl === el.codeError) return el.codeInput;
  if (errorEl === el.passportError) return el.passportStart;
  return null;
}

// `message` may hold `{time}`: the wait left, counted down in place (no second "try again").
function showError(errorEl, message, { retryAfter = null, extra = "", phone = null } = {}) {
  const error = { message, extra, phone, until: retryAfter ? deadlineIn(retryAfter) : null };
  state.errors.set(errorEl, error);
  paintError(errorEl);
  const input = inputFor(errorEl);
  if (input) input.setAttribute("aria-invalid", "true");
  alertNow([errorText(error), extra].filter(Boolean).join(" "));
}

function errorText(error) {
  const left = error.until == null ? 0 : secondsLeft(error.until);
  if (error.message.includes("{time}")) return format(error.message, { time: clock(left) });
  return left > 0 ? `${error.message} ${t("retry_in", { time: clock(left) })}` : error.message;
}

function paintError(errorEl) {
  const error = state.errors.get(errorEl);
  if (!error) return;
  if (error.until != null && error.message.includes("{time}") && !secondsLeft(error.until)) {
    clearError(errorEl); // the wait is over: nothing left to say
    return;
  }
  // The message (with its countdown) and the attempts left, each on its own line.
  const lines = [errorText(error), error.extra].filter(Boolean);
  const painted = Array.from(errorEl.children, (line) => line.textContent);
  if (painted.join("\n") !== lines.join("\n")) {
    const line = (textContent) =>
      element("span", { className: "verification-error-line", textContent });
    errorEl.replaceChildren(...lines.map(line));
  }
  errorEl.classList.add("is-error");
  errorEl.hidden = false;
}

function clearError(errorEl) {
  state.errors.delete(errorEl);
  errorEl.hidden = true;
  errorEl.textContent = "";
  errorEl.classList.remove("is-error");
  const input = inputFor(errorEl);
  if (input) input.removeAttribute("aria-invalid");
}

function clearErrors() {
  for (const errorEl of [el.phoneError, el.codeError, el.resendError, el.passportError, el.status]) {
    clearError(errorEl);
  }
  silence(el.alert);
}

// A new screen starts without the previous one's errors or status.
function clearMessages() {
  clearErrors();
  showStatus("", { announceIt: false });
}

function showStatus(text, { announceIt = true } = {}) {
  state.errors.delete(el.status);
  el.status.classList.remove("is-error");
  el.status.textContent = text;
  el.status.hidden = !text;
  if (text && announceIt) announce(text);
}

// Rendering

// `focus`: move focus to the new step when the step changes (the visitor's own action). Otherwise
// focus only moves when it was in the card and its element disappeared: to `rescue[step]`, else to
// the step's heading, never to a field where the next keystroke would overwrite something.
function render({ focus = true, rescue = {} } = {}) {
  const focusWasInCard = el.card.contains(document.activeElement);
  const v = visibleSnapshot();
  const step = stepFor(v);
  if (step === "passport" && !passport) return void loadPassport();
  const changed = step !== state.step;
  state.step = step;
  root.dataset.verificationState = step;
  el.card.removeAttribute("aria-busy");
  for (const name of STEPS) $(`step-${name}`).hidden = name !== step;
  document.title = step === "number" ? pageTitle : `${titleOf(step).textContent} – ${pageTitle}`;

  if (step === "number") renderNumber(v, changed);
  else if (step === "code") renderCode(v);
  else if (step === "passport") passport.render(v);
  else el.verifiedNumber.textContent = v.phone_number;

  tick();
  if (changed && focus) focusStep(step);
  else if (focusWasInCard && focusLost()) (rescue[step] ?? titleOf(step)).focus();
}

function focusLost() {
  const active = document.activeElement;
  return !active || active === document.body || active.offsetParent === null;
}

function focusStep(step) {
  if (step === "number") {
    el.phoneInput.focus();
    el.phoneInput.select();
  } else if (step === "code") {
    if (!el.codeInput.disabled) el.codeInput.focus();
    else titleOf("code").focus();
  } else {
    titleOf(step).focus();
  }
}

function renderNumber(v, changed) {
  const sending = state.sendPending || (v && v.status === "sending");
  // Another tab's send, or a verification that ended without success: show its number again.
  const ended = changed && PREFILL_STATUSES.includes(v?.status);
  const prefill = v && !isPassport(v) && (v.status === "sending" || ended);
  if (prefill) el.phoneInput.value = v.phone_number;
  el.phoneInput.readOnly = Boolean(sending);
  el.numberForm.setAttribute("aria-busy", sending ? "true" : "false");
  el.sendCode.classList.toggle("is-busy", Boolean(sending));
  el.passportStart.classList.toggle("is-busy", state.passportPending);
}

function codeDescription(v) {
  const code = v.code || {};
  const params = {
    phone: v.phone_number,
    length: code.length ?? "",
    prefix: code.prefix ?? "",
    beginning: code.beginning ?? "",
  };
  const key = `code_${code.type}`;
  if (code.type === "sms_word" || code.type === "sms_phrase") {
    return [t(code.beginning ? key : `${key}_plain`), params];
  }
  return [key in strings ? strings[key] : t("code_unknown"), params];
}

function codeShape(v) {
  const code = v.code || {};
  const digits = DIGIT_TYPES.includes(code.type);
  const length = Number(code.length) > 0 ? Number(code.length) : null;
  return { type: code.type, digits, length, autoSubmit: digits && length !== null };
}

function renderCode(v) {
  const shape = codeShape(v);
  const [template, params] = codeDescription(v);
  fillEmphasised(el.codeDescription, template, params);

  const fragmentUrl = v.code && v.code.type === "fragment_sms" ? v.code.url : null;
  el.fragmentRow.hidden = !fragmentUrl;
  if (fragmentUrl) el.fragmentLink.href = fragmentUrl;

  const key = [v.id, shape.type, shape.length, v.code && v.code.prefix].join("|");
  if (key !== state.codeKey) {
    state.codeKey = key;
    state.lastSubmittedCode = null;
    configureCodeInput(v, shape);
  }
  const expired = state.codeExpiredId === v.id;
  el.codeInput.disabled = expired;
  el.codeInput.readOnly = state.verifyPending;
  el.codeForm.setAttribute("aria-busy", state.verifyPending ? "true" : "false");
  el.sendNewCode.hidden = !expired;
  // Auto-submit stays, but a visible button lets the visitor send what they typed on their own.
  el.verifyCode.hidden = expired;
  el.verifyCode.classList.toggle("is-busy", state.verifyPending);
  // Only the Gateway API reports how far the message got; a status we do not know is not shown.
  const delivery = v.transport === "gateway" ? strings[`delivery_${v.delivery}`] : null;
  el.delivery.hidden = !delivery;
  setText(el.delivery, delivery ?? "");
}

function configureCodeInput(v, shape) {
  const input = el.codeInput;
  input.value = "";
  if (shape.digits) {
    input.inputMode = "numeric";
    input.setAttribute("pattern", "[0-9]*");
  } else {
    input.inputMode = "text";
    input.removeAttribute("pattern");
  }
  if (shape.length) {
    input.maxLength = shape.length;
    input.style.setProperty("--code-length", String(shape.length));
    input.classList.add("is-sized");
  } else {
    input.removeAttribute("maxlength");
    input.style.removeProperty("--code-length");
    input.classList.remove("is-sized");
  }
  const prefix = v.code && v.code.type === "missed_call" ? v.code.prefix : null;
  el.codePrefix.hidden = !prefix;
  el.codePrefix.textContent = prefix ? groupLike(prefix, v.phone_number) : "";
  const words = { sms_word: "label_word", sms_phrase: "label_phrase" };
  el.codeLabel.textContent = t(words[shape.type] ?? "label_code");
  input.classList.toggle("is-text", !shape.digits);
  clearError(el.codeError);
}

// Groups the digits of `prefix` (a caller's number) the way `sample` (the visitor's number, in
// international format) is grouped: callers are usually in the visitor's country.
function groupLike(prefix, sample) {
  const digits = prefix.replace(/\D/g, "");
  let out = prefix.startsWith("+") ? "+" : "";
  let used = 0;
  for (const char of sample.replace(/^\+/, "")) {
    if (used === digits.length) break;
    if (/\d/.test(char)) out += digits[used++];
    else if (used > 0 && !out.endsWith(" ")) out += " ";
  }
  return (out + digits.slice(used)).trim();
}

// The Passport step's script and styles load only when a visitor needs them, so the code flow never
// downloads them. Their URLs come from the template: hashed static file names work too.
let passport = null;
let passportLoading = null;

function loadPassport() {
  passportLoading ??= Promise.all([
    import(app.dataset.passportScript),
    new Promise((onload, onerror) => {
      const href = app.dataset.passportStyles;
      document.head.append(element("link", { rel: "stylesheet", href, onload, onerror }));
    }),
  ]).then(
    ([module]) => {
      const page = { state, el, t, send, announce, setText, clock, secondsLeft, warnExpiry, leave };
      passport = module.attach(page);
      render();
    },
    () => {
      // Offline, most likely: show the number step and offer a reload; the next frame tries again.
      passportLoading = null;
      state.passportPending = false;
      el.card.removeAttribute("aria-busy");
      showConnection(t("error_fallback"), { announceIt: true, error: true, reload: true });
      tick();
    },
  );
}

// Timers: the server's deadlines, counted down locally and resynced on every frame.

// The string for the next delivery (`resend_call`, `countdown_call`…); SMS wording for a new type.
const nextText = (kind, nextType, params) =>
  t(`${kind}_${nextType}` in strings ? `${kind}_${nextType}` : `${kind}_sms`, params);

const digitsOf = (text) => String(text ?? "").replace(/\D/g, "");

// Seconds before a code can be sent to `phone`; a wait with no number applies to every number.
function sendWaitFor(phone) {
  const blocked = state.sendBlocked;
  if (!blocked) return 0;
  const left = secondsLeft(blocked.until);
  if (!left) state.sendBlocked = null;
  return !blocked.phone || blocked.phone === digitsOf(phone) ? left : 0;
}

function tick() {
  const v = visibleSnapshot();

  // Send button: disabled while Telegram or our limits ask us to wait.
  const sendWait = sendWaitFor(el.phoneInput.value);
  const sending = state.sendPending || (v && v.status === "sending" && !v.code);
  // After a code was sent and then lost (expired, too many tries), the next one is "a new code".
  const hadCode = v && v.code && ["expired", "failed"].includes(v.status);
  let sendLabel = hadCode ? t("send_new_code") : t("send_code");
  if (sending) sendLabel = t("sending");
  else if (sendWait) sendLabel = t("send_code_wait", { time: clock(sendWait) });
  setText(el.sendCode, sendLabel);
  el.sendCode.disabled = Boolean(sending || sendWait);

  for (const errorEl of state.errors.keys()) paintError(errorEl);

  el.passportStart.disabled = Boolean(sending) || state.passportPending;

  if (state.step === "code" && v) tickCode(v);
  if (state.step === "passport" && v) passport.tick(v);
}

function warnExpiry(left, key) {
  if (EXPIRY_WARN_AT.has(left) && state.lastExpiryWarning !== left) {
    state.lastExpiryWarning = left;
    announce(t(key, { time: clock(left) }));
  }
}

function tickCode(v) {
  const nextType = v.next_type;
  const expiresLeft = secondsLeft(state.expiresDeadline);
  // Do not offer a delivery that could only come after this code has expired.
  const outlasts =
    state.expiresDeadline != null &&
    state.resendDeadline != null &&
    state.resendDeadline >= state.expiresDeadline;
  const resendHidden =
    !nextType || outlasts || state.resendUnavailableId === v.id || state.codeExpiredId === v.id;
  if (resendHidden) {
    setText(el.countdown, "");
    el.resend.hidden = true;
    state.resendWasShown = false;
  } else if (state.resendPending || (v.status === "sending" && v.code)) {
    setText(el.countdown, t("resend_requesting"));
    el.resend.hidden = true;
  } else {
    const left = secondsLeft(state.resendDeadline);
    if (left > 0) {
      const text = nextText("countdown", nextType, { time: clock(left) });
      setText(el.countdown, text);
      el.resend.hidden = true;
      state.resendWasShown = false;
      if (ANNOUNCE_AT.has(left) && state.lastAnnouncedSecond !== left) {
        state.lastAnnouncedSecond = left;
        announce(text);
      }
    } else {
      setText(el.countdown, "");
      const label = nextText("resend", nextType);
      setText(el.resend, label);
      const wasHidden = el.resend.hidden;
      el.resend.hidden = false;
      if (wasHidden && !state.resendWasShown) {
        state.resendWasShown = true;
        announce(t("resend_ready", { action: label }));
      }
    }
  }

  setText(el.expires, expiresLeft > 0 ? t("expires", { time: clock(expiresLeft) }) : "");
  warnExpiry(expiresLeft, "expires_soon");

  const verifyWait = secondsLeft(state.verifyBlockedUntil);
  if (!verifyWait) state.verifyBlockedUntil = null;
  el.verifyCode.disabled = Boolean(verifyWait) || state.verifyPending;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

setInterval(tick, 250);

// Frames from the server

function onFrame(frame) {
  if (!frame || typeof frame !== "object") return;
  const hasSnapshot = Object.hasOwn(frame, "verification");
  const previousStatus = visibleSnapshot()?.status;
  switch (frame.type) {
    case "state": {
      const first = !state.received;
      state.received = true;
      acceptSnapshot(frame.verification);
      state.sendPending = false;
      if (first) {
        const v = visibleSnapshot();
        if (v && v.status === "expired") showStatus(t(endedText(v)), { announceIt: false });
        if (v && v.status === "failed" && (v.code || isPassport(v))) {
          showStatus(t(isPassport(v) ? "passport_failed" : "status_failed"), { announceIt: false });
        }
      }
      render();
      break;
    }
    case "code_sent": {
      const wasCode = state.step === "code";
      acceptSnapshot(frame.verification);
      state.sendPending = false;
      state.resendPending = false;
      state.verifyPending = false;
      state.resendUnavailableId = null;
      state.codeExpiredId = null;
      state.lastAnnouncedSecond = null;
      state.resendWasShown = false;
      clearMessages();
      render();
      if (wasCode && state.step === "code") {
        // A new delivery (e.g. the call after the SMS): say where the code went now.
        announce(el.codeDescription.textContent);
        if (!el.codeInput.disabled) el.codeInput.focus();
      }
      break;
    }
    case "passport_request":
      state.passportLink = { id: frame.verification?.id, url: frame.url, qr: frame.qr };
      state.passportPending = false;
      acceptSnapshot(frame.verification);
      state.lastExpiryWarning = null;
      clearMessages();
      render();
      break;
    case "delivery":
      if (hasSnapshot) acceptSnapshot(frame.verification);
      else if (state.snapshot) state.snapshot = { ...state.snapshot, delivery: frame.status };
      render({ focus: false });
      break;
    case "resend_available":
      if (hasSnapshot) acceptSnapshot(frame.verification);
      state.resendDeadline = now();
      render();
      break;
    case "verified":
      acceptSnapshot(frame.verification);
      state.verifyPending = false;
      clearMessages();
      render();
      if (frame.verification) announce(t("verified_announce", { phone: frame.verification.phone_number }));
      break;
    case "cancelled":
    case "expired": {
      const id = frame.verification?.id;
      const dismissed = id && id === state.dismissedId;
      acceptSnapshot(frame.verification);
      state.verifyPending = false;
      state.resendPending = false;
      if (!dismissed && previousStatus !== frame.verification?.status) {
        clearErrors();
        // Neither takes a visitor who is typing by surprise: focus moves only if it was lost
        // with the code step, to the phone field after their own Cancel, else to the heading.
        const ownCancel = frame.type === "cancelled" && state.lastAction === "cancel";
        const passport = isPassport(frame.verification);
        const rescue = ownCancel ? el.phoneInput : passport ? el.passportStart : null;
        render({ focus: false, rescue: rescue ? { number: rescue } : {} });
        showStatus(t(frame.type === "cancelled" ? "status_cancelled" : endedText(frame.verification)));
      } else {
        render();
      }
      break;
    }
    case "error":
      onError(frame, hasSnapshot);
      break;
    default:
      // Unknown frame types are additions from a newer server: ignore them.
      break;
  }
}

const endedText = (v) => (isPassport(v) ? "passport_expired" : "status_expired");

function errorTarget(code) {
  if (code.startsWith("PASSPORT_") || state.lastAction === "passport_start") return "passport";
  if (code.startsWith("PHONE_NUMBER_")) return "phone";
  if (code.startsWith("PHONE_CODE_")) return "code";
  if (code === "RESEND_NOT_AVAILABLE" || code === "SEND_CODE_UNAVAILABLE") return "resend";
  if (code === "TOO_MANY_ATTEMPTS") return "status";
  return { send_code: "phone", verify: "code", resend: "resend" }[state.lastAction] ?? "status";
}

function onError(frame, hasSnapshot) {
  const code = String(frame.code || "INTERNAL");
  const retryAfter = Number(frame.retry_after) > 0 ? Number(frame.retry_after) : null;
  const action = state.lastAction;
  // Our own send limits: say what was limited (codes, not "attempts") and when, in one sentence.
  const limitedSend = code === "RATE_LIMITED" && retryAfter && action !== "verify";
  const message = limitedSend ? t("rate_limited") : frame.message || t("error_fallback");
  const phone = action === "send_code" ? digitsOf(state.lastSentPhone) : null;
  if (hasSnapshot) acceptSnapshot(frame.verification);
  const target = errorTarget(code);
  settle();
  if (code === "PASSPORT_UNAVAILABLE") el.passportOption.hidden = true;

  const v = visibleSnapshot();
  if (code === "TOO_MANY_ATTEMPTS" && v && stepFor(v) === "code") {
    // The server ended this verification; go back to the number with it prefilled.
    state.dismissedId = v.id;
    el.phoneInput.value = v.phone_number;
  }
  if (code === "PHONE_CODE_EXPIRED" && v) state.codeExpiredId = v.id;
  if (code === "SEND_CODE_UNAVAILABLE" && v) state.resendUnavailableId = v.id;
  if (code === "RESEND_NOT_AVAILABLE" && retryAfter) state.resendDeadline = deadlineIn(retryAfter);
  if ((code === "FLOOD_WAIT" || code === "RATE_LIMITED") && retryAfter) {
    if (action === "verify") state.verifyBlockedUntil = deadlineIn(retryAfter);
    else if (action === "resend") state.resendDeadline = deadlineIn(retryAfter);
    else if (target === "phone" || target === "status") {
      state.sendBlocked = { phone, until: deadlineIn(retryAfter) };
    }
  }
  if (code === "NO_ACTIVE_VERIFICATION") send({ type: "state" }, { quiet: true });

  render({ focus: false, rescue: { number: el.phoneInput } });

  // Show the error next to its cause when that is on screen, else at the top of the card.
  const onScreen = { phone: "number", code: "code", resend: "code", passport: "number" };
  switch (onScreen[target] === state.step ? target : "status") {
    case "phone":
      showError(el.phoneError, message, { retryAfter, phone });
      if (state.step === "number") {
        el.phoneInput.focus();
        el.phoneInput.select();
      }
      break;
    case "code": {
      let extra = "";
      if (code === "PHONE_CODE_INVALID" && v && v.attempts_left != null) {
        extra = attemptsText(v.attempts_left);
      }
      if (code === "PHONE_CODE_INVALID" || code === "PHONE_CODE_EMPTY") {
        el.codeInput.value = "";
        state.lastSubmittedCode = null;
      }
      showError(el.codeError, message, { retryAfter, extra });
      if (state.step === "code") {
        if (code === "PHONE_CODE_EXPIRED") el.sendNewCode.focus();
        else if (!el.codeInput.disabled) el.codeInput.focus();
      }
      break;
    }
    case "passport":
      showError(el.passportError, message, { retryAfter });
      (el.passportOption.hidden ? el.phoneInput : el.passportStart).focus();
      break;
    case "resend":
      showError(el.resendError, message, {
        retryAfter: code === "RESEND_NOT_AVAILABLE" ? null : retryAfter,
      });
      break;
    default:
      showError(el.status, message, { retryAfter });
      if (state.step === "number" && code === "TOO_MANY_ATTEMPTS") el.phoneInput.focus();
  }
  tick();
}

// Visitor actions

function send(message, { quiet = false } = {}) {
  if (!socket || socket.readyState !== WebSocket.OPEN) {
    if (!quiet) {
      // Shown beside what the visitor tried to send; what they typed stays for when we are back.
      const errorEl = { code: el.codeError, passport: el.status }[state.step] ?? el.phoneError;
      showError(errorEl, t("not_connected"));
      state.errors.get(errorEl).offline = true;
    }
    return false;
  }
  socket.send(JSON.stringify(message));
  if (message.type !== "state") state.lastAction = message.type;
  return true;
}

function sendCode(phone) {
  clearMessages();
  if (!phone) {
    showError(el.phoneError, t("phone_required"));
    el.phoneInput.focus();
    return;
  }
  if (sendWaitFor(phone)) return;
  state.lastSentPhone = phone;
  if (send({ type: "send_code", phone_number: phone })) {
    state.sendPending = true;
    render({ focus: false });
  }
}

el.numberForm.addEventListener("submit", (event) => {
  event.preventDefault();
  sendCode(el.phoneInput.value.trim());
});

el.phoneInput.addEventListener("input", () => {
  const error = state.errors.get(el.phoneError);
  // A wait for one number says nothing about another one.
  const otherNumber = error?.phone != null && error.phone !== digitsOf(el.phoneInput.value);
  if (error && (!error.until || otherNumber)) clearError(el.phoneError);
  tick();
});

function normalisedCode() {
  const v = visibleSnapshot();
  if (!v) return "";
  const shape = codeShape(v);
  const raw = el.codeInput.value;
  return shape.digits ? raw.replace(/\D/g, "") : raw.trim().replace(/\s+/g, " ");
}

function submitCode({ auto = false } = {}) {
  const v = visibleSnapshot();
  if (!v || state.verifyPending || state.codeExpiredId === v.id) return;
  if (secondsLeft(state.verifyBlockedUntil) > 0) return;
  const shape = codeShape(v);
  const code = normalisedCode();
  if (!code) {
    if (!auto) showError(el.codeError, t("code_required"));
    return;
  }
  if (shape.digits && shape.length && code.length !== shape.length) {
    if (!auto) showError(el.codeError, t("code_wrong_length", { length: shape.length }));
    return;
  }
  if (auto && code === state.lastSubmittedCode) return;
  if (send({ type: "verify", code })) {
    state.lastSubmittedCode = code;
    state.verifyPending = true;
    clearError(el.codeError);
    render({ focus: false });
  }
}

el.codeForm.addEventListener("submit", (event) => {
  event.preventDefault();
  submitCode();
});

el.codeInput.addEventListener("paste", (event) => {
  const v = visibleSnapshot();
  if (!v) return;
  const shape = codeShape(v);
  const pasted = event.clipboardData?.getData("text") ?? "";
  if (!shape.digits) return;
  event.preventDefault();
  let digits = pasted.replace(/\D/g, "");
  if (shape.length && digits.length > shape.length) {
    // A missed call's code is the end of the calling number; anything else starts the paste.
    digits =
      shape.type === "missed_call" ? digits.slice(-shape.length) : digits.slice(0, shape.length);
  }
  el.codeInput.value = digits;
  el.codeInput.dispatchEvent(new Event("input", { bubbles: true }));
});

el.codeInput.addEventListener("input", () => {
  const v = visibleSnapshot();
  if (!v) return;
  const shape = codeShape(v);
  if (shape.digits) {
    let digits = el.codeInput.value.replace(/\D/g, "");
    if (shape.length) digits = digits.slice(0, shape.length);
    if (digits !== el.codeInput.value) el.codeInput.value = digits;
  }
  if (state.errors.has(el.codeError) && !state.errors.get(el.codeError).until) {
    clearError(el.codeError);
  }
  if (shape.autoSubmit && el.codeInput.value.length === shape.length) submitCode({ auto: true });
});

el.resend.addEventListener("click", () => {
  clearError(el.resendError);
  if (send({ type: "resend" })) {
    state.resendPending = true;
    tick();
    el.codeInput.focus();
  }
});

el.sendNewCode.addEventListener("click", () => {
  const v = visibleSnapshot();
  if (!v) return;
  if (send({ type: "send_code", phone_number: v.phone_number })) {
    state.sendPending = true;
    clearErrors();
  }
});

// Cancels the visible verification and goes back to the number at once; the `cancelled` frame
// that follows is expected, not news.
function leave({ prefill = false } = {}) {
  const v = visibleSnapshot();
  if (!v || !send({ type: "cancel" })) return;
  state.dismissedId = v.id;
  clearMessages();
  if (prefill) el.phoneInput.value = v.phone_number;
  render();
}

el.changeNumber.addEventListener("click", () => leave({ prefill: true }));

el.cancel.addEventListener("click", () => {
  send({ type: "cancel" });
});

el.passportStart.addEventListener("click", () => {
  clearMessages();
  if (send({ type: "passport_start" })) {
    state.passportPending = true;
    loadPassport(); // while the server prepares the request
    render({ focus: false });
  }
});

el.verifyAnother.addEventListener("click", () => {
  const v = visibleSnapshot();
  if (v) state.dismissedId = v.id;
  clearMessages();
  el.phoneInput.value = "";
  render();
});

document.addEventListener("visibilitychange", () => {
  // Background tabs throttle timers; ask for fresh numbers when the visitor comes back.
  if (document.visibilityState === "visible") send({ type: "state" }, { quiet: true });
});

// Connection

let socket = null;
let failures = 0;
let refusals = 0;
let everOpened = false;
let reconnectTimer = null;
let connectingNotice = null;

function showConnection(text, { announceIt = false, error = false, reload = false } = {}) {
  el.connection.textContent = text;
  el.connection.hidden = !text;
  el.connection.classList.toggle("is-error", error);
  if (reload) {
    const button = element("button", { type: "button", className: "verification-link" });
    button.textContent = t("reload");
    button.addEventListener("click", () => location.reload());
    el.connection.append(" ", button);
  }
  if (text && announceIt) announce(text);
}

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const path = app.dataset.websocketPath || "/ws/verification/";
  return `${scheme}//${location.host}${path}`;
}

function websocketUnavailable(key = "websocket_unavailable") {
  clearTimeout(connectingNotice);
  showConnection(t(key), { announceIt: true, error: true });
  if (!state.received) {
    // Nothing can be sent; show the first step so the page is not blank.
    render({ focus: false });
  }
}

function connect() {
  reconnectTimer = null;
  try {
    socket = new WebSocket(socketUrl());
  } catch {
    scheduleReconnect();
    return;
  }
  socket.addEventListener("open", () => {
    clearTimeout(connectingNotice);
    failures = 0;
    everOpened = true;
    root.dataset.connection = "open";
    showConnection("");
    for (const [errorEl, error] of state.errors) if (error.offline) clearError(errorEl);
    // The server greets every socket with `state`; if that frame is lost, ask for it.
    const opened = socket;
    setTimeout(() => {
      if (!state.received && socket === opened && opened.readyState === WebSocket.OPEN) {
        opened.send(JSON.stringify({ type: "state" }));
      }
    }, 5000);
  });
  socket.addEventListener("message", (event) => {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    onFrame(frame);
  });
  socket.addEventListener("close", (event) => {
    const closed = CLOSED[event.code];
    root.dataset.connection = closed?.reconnect === false ? "ended" : "closed";
    socket = null;
    settle();
    if (state.received) render({ focus: false });
    if (!closed) {
      scheduleReconnect();
      return;
    }
    clearTimeout(connectingNotice);
    const reload = !closed.reconnect;
    showConnection(t(closed.key), { announceIt: true, error: true, reload });
    if (reload) return;
    // Said once; the retries that follow keep the message instead of "Reconnecting…". A socket
    // closed again and again waits longer each time, even though each one opened.
    refusals += 1;
    failures = Math.max(failures, refusals);
    scheduleReconnect({ quiet: true });
  });
}

function scheduleReconnect({ quiet = false } = {}) {
  failures += 1;
  // A handshake that never succeeds is a refusal (an origin the site does not allow) or a network
  // that blocks WebSockets: neither is the browser's fault.
  if (!everOpened && failures >= FIRST_CONNECT_TRIES) websocketUnavailable("handshake_refused");
  else if (everOpened && !quiet) showConnection(t("reconnecting"), { announceIt: failures === 1 });
  // Exponential backoff with equal jitter: tabs dropped together by a restart come back apart.
  const ceiling = Math.min(MAX_BACKOFF_SECONDS, 2 ** (failures - 1));
  const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
  if (!reconnectTimer) reconnectTimer = setTimeout(connect, delay * 1000);
}

root.dataset.connection = "closed";
el.card.setAttribute("aria-busy", "true");
if (typeof WebSocket === "undefined") {
  websocketUnavailable();
} else {
  // Only say "Connecting…" when it takes long enough to be noticed.
  connectingNotice = setTimeout(() => showConnection(t("connecting")), 1000);
  connect();
}
