// Paints the reducer's state. A paint may repeat: it only writes what changed.
import { codeDescription, codeShape, errorText, nextText, sendWait, t, visible } from "./verify_state.js";
import { clock, resendSlot, secondsLeft } from "./verify_timers.js";

const $ = (id) => document.getElementById(id);
// `el.phoneInput` is #phone-input; only the ids that differ are listed.
const IDS = { card: "verification-card", connection: "connection-message", status: "status-message" };
const kebab = (name) => name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
export const el = new Proxy({}, { get: (found, name) => (found[name] ??= $(IDS[name] ?? kebab(name))) });
const root = document.documentElement;
const pageTitle = document.title;
// Error slot: where it is shown, the control it is about.
const SLOTS = {
  phone: ["phoneError", "phoneInput"],
  code: ["codeError", "codeInput"],
  resend: ["resendError"],
  passport: ["passportError", "passportStart"],
  status: ["status"],
};
const element = (tag, properties) => Object.assign(document.createElement(tag), properties);
const busy = (node, on) => node.classList.toggle("is-busy", Boolean(on));
const attr = (node, name, value) => (value ? node.setAttribute(name, value) : node.removeAttribute(name));
let banner, description, codeKey;

export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// `target`: an element's name, or "step": where the current step starts.
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

// A caller's prefix grouped as the visitor's number: callers are usually in the same country.
function groupLike(prefix, sample) {
  const digits = prefix.replace(/\D/g, "");
  let out = prefix.startsWith("+") ? "+" : "";
  let used = 0;
  for (const char of sample.replace(/^\+/, "")) {
    if (used === digits.length) break;
    if (/\d/.test(char)) out += digits[used++];
    else if (used && !out.endsWith(" ")) out += " ";
  }
  return (out + digits.slice(used)).trim();
}

function paintBanner(s) {
  if (s.banner === banner) return;
  banner = s.banner;
  const node = el.connection;
  node.textContent = banner?.text ?? "";
  node.hidden = !banner;
  node.classList.toggle("is-error", Boolean(banner?.error));
  if (banner?.reload) {
    const button = element("button", { type: "button", className: "verification-link" });
    button.textContent = t(s, "reload");
    button.onclick = () => location.reload();
    node.append(" ", button);
  }
}

function paintErrors(s, now) {
  for (const [slot, [name, control]] of Object.entries(SLOTS)) {
    const error = s.errors[slot];
    const node = el[name];
    const lines = error ? [errorText(s, error, now), error.extra].filter(Boolean) : [];
    if (Array.from(node.children, (line) => line.textContent).join("\n") !== lines.join("\n")) {
      const line = (textContent) => element("span", { className: "verification-error-line", textContent });
      node.replaceChildren(...lines.map(line));
    }
    node.hidden = !error;
    node.classList.toggle("is-error", Boolean(error && !error.info));
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
    input.classList.toggle("is-sized", Boolean(shape.length));
    input.classList.toggle("is-text", !shape.digits);
    const prefix = v.code?.type === "missed_call" && v.code.prefix;
    el.codePrefix.hidden = !prefix;
    el.codePrefix.textContent = prefix ? groupLike(prefix, v.phone_number) : "";
    const label = { sms_word: "label_word", sms_phrase: "label_phrase" }[shape.type];
    el.codeLabel.textContent = t(s, label ?? "label_code");
  }
  const expired = s.codeExpiredId === v.id;
  const verifying = Boolean(s.pending.verify);
  input.disabled = expired;
  input.readOnly = verifying;
  el.codeForm.setAttribute("aria-busy", verifying);
  el.sendNewCode.hidden = !expired;
  // Auto-submit stays, but a button lets the visitor send what they typed.
  el.verifyCode.hidden = expired;
  busy(el.verifyCode, verifying);
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
  for (const name of ["number", "code", "passport", "done"]) $(`step-${name}`).hidden = name !== step;
  document.title = step === "number" ? pageTitle : `${el[`${step}Title`].textContent} – ${pageTitle}`;
  if (s.passportOff) el.passportOption.hidden = true;
  paintErrors(s, now);

  const sending = s.pending.send || v?.status === "sending";
  el.phoneInput.readOnly = Boolean(sending);
  el.numberForm.setAttribute("aria-busy", Boolean(sending));
  busy(el.sendCode, sending);
  busy(el.passportStart, s.pending.passport);
  const wait = sendWait(s, s.phone, now);
  const blocked = s.pending.send || (v?.status === "sending" && !v.code);
  // After a code was lost (expired, too many tries), the next one is "a new code".
  let label = v?.code && ["expired", "failed"].includes(v.status) ? "send_new_code" : "send_code";
  if (blocked) label = "sending";
  setText(el.sendCode, wait && !blocked ? t(s, "send_code_wait", { time: clock(wait) }) : t(s, label));
  el.sendCode.disabled = Boolean(blocked || wait);
  el.passportStart.disabled = Boolean(blocked || s.pending.passport);

  if (step === "code") paintCode(s, v, now);
  if (step === "passport") passport(v, s, now);
  if (step === "done") setText(el.verifiedNumber, v.phone_number);
  return true;
}
