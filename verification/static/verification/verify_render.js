// Paints the reducer's state. A paint may repeat: it only writes what changed.
import { codeDescription, codeShape, errorText, nextText, sendWait, t, visible } from "./verify_state.js";
import { clock, resendSlot, secondsLeft } from "./verify_timers.js";

// `el.phoneInput` is #phone-input.
const IDS = { card: "verification-card", connection: "connection-message", status: "status-message" };
const kebab = (name) => name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
export const el = new Proxy({}, {
  get: (found, name) => (found[name] ??= document.getElementById(IDS[name] ?? kebab(name))),
});
const root = document.documentElement;
const pageTitle = document.title;
// Error slots (each shown in `${slot}Error`, but `status`) and the controls they are about.
const SLOTS = ["phone", "code", "resend", "passport", "status"];
const CONTROLS = { phone: "phoneInput", code: "codeInput", passport: "passportStart" };
// Live regions: errors interrupt (role=alert), the rest waits its turn.
const speaking = new Map();
// Also drops a message about to be spoken, so nothing stale is read later.
export function silence(region = el.verificationAlert) {
  clearTimeout(speaking.get(region));
  region.textContent = "";
}
// Emptied first, a repeated message is read again.
function speak(region, text) {
  silence(region);
  speaking.set(region, setTimeout(() => (region.textContent = text), 60));
}
export const announce = (text) => speak(el.verificationAnnouncer, text);
export const alert = (text) => speak(el.verificationAlert, text);

const element = (tag, properties) => Object.assign(document.createElement(tag), properties);
const attr = (node, name, value) => (value ? node.setAttribute(name, value) : node.removeAttribute(name));
let banner, description, codeKey;

export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

export function focus(target, step, select) {
  if (target === "step") {
    select = step === "number";
    target = select ? "phoneInput" : step === "code" && !el.codeInput.disabled ? "codeInput" : `${step}Title`;
  }
  if (target === "passportStart" && el.passportOption.hidden) target = "phoneInput";
  el[target].focus();
  if (select) el[target].select();
}

// Values (the number, the prefix) are emphasised, never parsed as HTML.
function fillEmphasised(node, template, params) {
  const parts = template.split(/\{(\w+)\}/).map((part, index) => {
    if (index % 2 === 0 || !(part in params)) return index % 2 ? `{${part}}` : part;
    return element("strong", { className: "verification-nowrap", dir: "ltr", textContent: params[part] });
  });
  node.replaceChildren(...parts);
}

// Grouped as the visitor's number: callers are usually in the same country.
function groupLike(prefix, sample) {
  const digits = [...prefix.replace(/\D/g, "")];
  const slots = sample.replace(/^\+/, "").replace(/\D+/g, " ");
  const grouped = slots.replace(/\d/g, () => digits.shift() ?? "#");
  return (prefix.startsWith("+") ? "+" : "") + (grouped.split("#")[0] + digits.join("")).trim();
}

function paintBanner(s) {
  if (s.banner === banner) return;
  banner = s.banner;
  const node = el.connection;
  node.textContent = banner?.text ?? "";
  node.hidden = !banner;
  node.classList.toggle("is-error", !!banner?.error);
  if (banner?.reload) {
    const reload = { type: "button", className: "verification-link", textContent: t(s, "reload") };
    node.append(" ", element("button", { ...reload, onclick: () => location.reload() }));
  }
}

function paintErrors(s, now) {
  for (const slot of SLOTS) {
    const error = s.errors[slot];
    const control = CONTROLS[slot];
    const node = el[slot === "status" ? slot : `${slot}Error`];
    setText(node, error ? [errorText(s, error, now), error.extra].filter(Boolean).join("\n") : "");
    node.hidden = !error;
    node.classList.toggle("is-error", !!error && !error.info);
    if (control) attr(el[control], "aria-invalid", error && "true");
  }
}

function paintCode(s, v, now) {
  const shape = codeShape(v);
  const input = el.codeInput;
  const [template, params] = codeDescription(s, v);
  const said = template + JSON.stringify(params);
  if (said !== description) fillEmphasised(el.codeDescription, template, params);
  description = said;
  const fragmentUrl = v.code?.type === "fragment_sms" && v.code.url;
  el.fragmentRow.hidden = !fragmentUrl;
  if (fragmentUrl) el.fragmentLink.href = fragmentUrl;

  if (codeKey !== s.codeKey) {
    codeKey = s.codeKey;
    input.inputMode = shape.digits ? "numeric" : "text";
    attr(input, "pattern", shape.digits && "[0-9]*");
    attr(input, "maxlength", shape.length);
    input.style.setProperty("--code-length", shape.length);
    input.classList.toggle("is-sized", !!shape.length);
    input.classList.toggle("is-text", !shape.digits);
    const prefix = v.code?.type === "missed_call" && v.code.prefix;
    el.codePrefix.hidden = !prefix;
    el.codePrefix.textContent = prefix ? groupLike(prefix, v.phone_number) : "";
    const label = { sms_word: "label_word", sms_phrase: "label_phrase" }[shape.type];
    el.codeLabel.textContent = t(s, label ?? "label_code");
  }
  const expired = s.codeExpiredId === v.id;
  const verifying = !!s.pending.verify;
  input.disabled = expired;
  input.readOnly = verifying;
  el.codeForm.setAttribute("aria-busy", verifying);
  el.sendNewCode.hidden = !expired;
  // Auto-submit stays, but a button lets the visitor send what they typed.
  el.verifyCode.hidden = expired;
  el.verifyCode.classList.toggle("is-busy", verifying);
  el.verifyCode.disabled = verifying || secondsLeft(s.verifyBlockedUntil, now) > 0;
  // Only the Gateway API reports delivery; an unknown status is not shown.
  const delivery = (v.transport === "gateway" && s.strings[`delivery_${v.delivery}`]) || "";
  el.delivery.hidden = !delivery;
  setText(el.delivery, delivery);

  const { mode, left } = resendSlot(s, v, now);
  let countdown = mode === "requesting" ? t(s, "resend_requesting") : "";
  if (mode === "countdown") countdown = nextText(s, "countdown", v.next_type, { time: clock(left) });
  setText(el.countdown, countdown);
  if (mode === "button") setText(el.resend, nextText(s, "resend", v.next_type));
  el.resend.hidden = mode !== "button";
  const expires = secondsLeft(s.expiresAt, now);
  setText(el.expires, expires ? t(s, "expires", { time: clock(expires) }) : "");
}

// False, with no step painted, while the Passport step's module is missing.
export function paint(s, now, passport) {
  root.dataset.connection = s.connection;
  paintBanner(s);
  const step = s.step;
  if (!step || (step === "passport" && !passport)) return !step;
  const v = visible(s);
  el.card.removeAttribute("aria-busy");
  root.dataset.verificationState = step;
  for (const name of ["number", "code", "passport", "done"]) el[`step-${name}`].hidden = name !== step;
  document.title = step === "number" ? pageTitle : `${el[`${step}Title`].textContent} – ${pageTitle}`;
  if (s.passportOff) el.passportOption.hidden = true;
  paintErrors(s, now);

  const sending = !!(s.pending.send || v?.status === "sending");
  el.phoneInput.readOnly = sending;
  el.numberForm.setAttribute("aria-busy", sending);
  el.sendCode.classList.toggle("is-busy", sending);
  el.passportStart.classList.toggle("is-busy", !!s.pending.passport);
  const wait = sendWait(s, s.phone, now);
  const blocked = s.pending.send || (v?.status === "sending" && !v.code);
  // After a code was lost (expired, too many tries), the next one is "a new code".
  let label = v?.code && ["expired", "failed"].includes(v.status) ? "send_new_code" : "send_code";
  if (blocked) label = "sending";
  setText(el.sendCode, wait && !blocked ? t(s, "send_code_wait", { time: clock(wait) }) : t(s, label));
  el.sendCode.disabled = !!(blocked || wait);
  el.passportStart.disabled = !!(blocked || s.pending.passport);

  if (step === "code") paintCode(s, v, now);
  if (step === "passport") passport(v, s, now);
  if (step === "done") setText(el.verifiedNumber, v.phone_number);
  return true;
}
