// Paints the reducer's state onto the page. Every paint may repeat: it only writes what changed.
import { codeDescription, codeShape, errorText, nextText, sendWait, t, visible } from "./verify_state.js";
import { clock, resendSlot, secondsLeft } from "./verify_timers.js";

const $ = (id) => document.getElementById(id);
// Elements by id: `el.phoneInput` is #phone-input; only the ids that differ are listed.
const IDS = { card: "verification-card", connection: "connection-message", status: "status-message" };
const kebab = (name) => name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
export const el = new Proxy({}, { get: (found, name) => (found[name] ??= $(IDS[name] ?? kebab(name))) });

const root = document.documentElement;
const pageTitle = document.title;
const STEPS = ["number", "code", "passport", "done"];
// Error slot -> [where it is shown, the control it is about]
const SLOTS = {
  phone: ["phoneError", "phoneInput"],
  code: ["codeError", "codeInput"],
  resend: ["resendError"],
  passport: ["passportError", "passportStart"],
  status: ["status"],
};

const element = (tag, properties) => Object.assign(document.createElement(tag), properties);

export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// Focuses `target` (an element's name, or "step": where the current step starts).
export function focus(target, step, select = false) {
  if (target === "step") {
    if (step === "number") select = true;
    target = step === "number" ? "phoneInput" : `${step}Title`;
    if (step === "code" && !el.codeInput.disabled) target = "codeInput";
  }
  if (target === "passportStart" && el.passportOption.hidden) target = "phoneInput";
  el[target].focus();
  if (select) el[target].select();
}

// Fills `node` with a translated sentence, emphasising the substituted values (the number, the
// prefix) without ever parsing them as HTML.
function fillEmphasised(node, template, params) {
  // Splitting on the placeholders leaves their names at the odd indices.
  const parts = template.split(/\{(\w+)\}/).map((part, index) => {
    if (index % 2 === 0) return part;
    if (!(part in params)) return `{${part}}`;
    const textContent = String(params[part]);
    return element("strong", { className: "verification-nowrap", dir: "ltr", textContent });
  });
  node.replaceChildren(...parts);
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

export function painter() {
  let banner = null;
  let description = null;
  let codeKey = null;

  function paintBanner(s, next) {
    if (next === banner) return;
    banner = next;
    el.connection.textContent = next?.text ?? "";
    el.connection.hidden = !next;
    el.connection.classList.toggle("is-error", Boolean(next?.error));
    if (next?.reload) {
      const button = element("button", { type: "button", className: "verification-link" });
      button.textContent = t(s, "reload");
      button.onclick = () => location.reload();
      el.connection.append(" ", button);
    }
  }

  // The message (with its countdown) and the attempts left, each on its own line.
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
      if (control && error) el[control].setAttribute("aria-invalid", "true");
      else if (control) el[control].removeAttribute("aria-invalid");
    }
  }

  function paintCode(s, v, now) {
    const shape = codeShape(v);
    const [template, params] = codeDescription(s, v);
    const said = template + JSON.stringify(params);
    if (said !== description) fillEmphasised(el.codeDescription, template, params);
    description = said;
    const fragmentUrl = v.code?.type === "fragment_sms" ? v.code.url : null;
    el.fragmentRow.hidden = !fragmentUrl;
    if (fragmentUrl) el.fragmentLink.href = fragmentUrl;

    const input = el.codeInput;
    if (codeKey !== s.codeKey) {
      codeKey = s.codeKey;
      input.inputMode = shape.digits ? "numeric" : "text";
      if (shape.digits) input.setAttribute("pattern", "[0-9]*");
      else input.removeAttribute("pattern");
      if (shape.length) input.maxLength = shape.length;
      else input.removeAttribute("maxlength");
      input.style.setProperty("--code-length", shape.length);
      input.classList.toggle("is-sized", Boolean(shape.length));
      input.classList.toggle("is-text", !shape.digits);
      const prefix = v.code?.type === "missed_call" ? v.code.prefix : null;
      el.codePrefix.hidden = !prefix;
      el.codePrefix.textContent = prefix ? groupLike(prefix, v.phone_number) : "";
      const words = { sms_word: "label_word", sms_phrase: "label_phrase" };
      el.codeLabel.textContent = t(s, words[shape.type] ?? "label_code");
    }
    const expired = s.codeExpiredId === v.id;
    const verifying = Boolean(s.pending.verify);
    input.disabled = expired;
    input.readOnly = verifying;
    el.codeForm.setAttribute("aria-busy", verifying);
    el.sendNewCode.hidden = !expired;
    // Auto-submit stays, but a visible button lets the visitor send what they typed on their own.
    el.verifyCode.hidden = expired;
    el.verifyCode.classList.toggle("is-busy", verifying);
    el.verifyCode.disabled = verifying || secondsLeft(s.verifyBlockedUntil, now) > 0;
    // Only the Gateway API reports how far the message got; a status we do not know is not shown.
    const key = `delivery_${v.delivery}`;
    const delivery = v.transport === "gateway" && s.strings[key] || "";
    el.delivery.hidden = !delivery;
    setText(el.delivery, delivery);

    const slot = resendSlot(s, v, now);
    let countdown = "";
    if (slot.mode === "requesting") countdown = t(s, "resend_requesting");
    if (slot.mode === "countdown") countdown = nextText(s, "countdown", v.next_type, { time: clock(slot.left) });
    setText(el.countdown, countdown);
    if (slot.mode === "button") setText(el.resend, nextText(s, "resend", v.next_type));
    el.resend.hidden = slot.mode !== "button";
    const left = secondsLeft(s.expiresAt, now);
    setText(el.expires, left ? t(s, "expires", { time: clock(left) }) : "");
  }

  // Returns false when the step is Passport and its module is not loaded yet: nothing is painted.
  return function paint(s, now, passport) {
    root.dataset.connection = s.connection;
    paintBanner(s, s.banner);
    const step = s.step;
    if (!step || (step === "passport" && !passport)) return !step;
    const v = visible(s);
    el.card.removeAttribute("aria-busy");
    root.dataset.verificationState = step;
    for (const name of STEPS) $(`step-${name}`).hidden = name !== step;
    document.title = step === "number" ? pageTitle : `${el[`${step}Title`].textContent} – ${pageTitle}`;
    if (s.passportOff) el.passportOption.hidden = true;
    paintErrors(s, now);

    // Send button: busy while a send is on its way, disabled while a wait applies to this number.
    const sending = Boolean(s.pending.send || v?.status === "sending");
    el.phoneInput.readOnly = sending;
    el.numberForm.setAttribute("aria-busy", sending);
    el.sendCode.classList.toggle("is-busy", sending);
    el.passportStart.classList.toggle("is-busy", Boolean(s.pending.passport));
    const wait = sendWait(s, s.phone, now);
    const busy = s.pending.send || (v?.status === "sending" && !v.code);
    // After a code was sent and then lost (expired, too many tries), the next one is "a new code".
    let label = v?.code && ["expired", "failed"].includes(v.status) ? "send_new_code" : "send_code";
    if (busy) label = "sending";
    setText(el.sendCode, wait && !busy ? t(s, "send_code_wait", { time: clock(wait) }) : t(s, label));
    el.sendCode.disabled = Boolean(busy || wait);
    el.passportStart.disabled = Boolean(busy || s.pending.passport);

    if (step === "code") paintCode(s, v, now);
    if (step === "passport") passport(v, s, now);
    if (step === "done") setText(el.verifiedNumber, v.phone_number);
    return true;
  };
}
