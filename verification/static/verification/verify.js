// The visitor's verification page: a thin view of the server's state, kept live over a WebSocket
// (protocol v1, docs/protocol.md). Every event goes through one reducer (verify_state.js); the
// renderer paints the state it returns, then the effects it lists are run here, once.
import { codeShape, initial, t, update, visible } from "./verify_state.js";
import { el, focus, painter, setText } from "./verify_render.js";
import { alert, announce, silence } from "./verify_speech.js";
import { connection } from "./verify_socket.js";
import { clock, secondsLeft } from "./verify_timers.js";
import { phoneInput } from "./phone_input.js";

const app = el.verification;
const { phoneRegions: url, phoneRegion: region, phoneOffered: regions } = app.dataset;
const picker = phoneInput(el.phoneInput, el.phoneCountry, { url, region, regions });
let strings = {};
try {
  strings = JSON.parse(el.verificationStrings.textContent);
} catch {
  // a broken block shows keys, never a broken page
}
const paint = painter();
let state = initial(strings);
let passport = null; // the Passport step's painter, once its module is loaded
let passportLoading = null;
let held = []; // focus moves waiting for the Passport step to be painted

const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const path = app.dataset.websocketPath || "/ws/verification/";
const socket = connection(`${scheme}//${location.host}${path}`, dispatch, () => state.received);

const actions = {
  announce,
  alert,
  silence: () => silence(),
  send: (message) => socket.send(message),
  reconnect: (delay) => socket.later(delay),
  phone: (value) => picker.set(value),
  clearCode: () => (el.codeInput.value = ""),
  loadPassport,
  focus: (target, select) => focus(target, state.step, select),
  rescue: (target) => {
    const active = document.activeElement;
    const lost = !active || active === document.body || active.offsetParent === null;
    if (hadFocus && lost) focus(target, state.step);
  },
};

let hadFocus = false; // whether focus was in the card before the paint that moved it

function dispatch(event) {
  hadFocus = el.card.contains(document.activeElement);
  state = update(state, { ...event, now: performance.now() });
  let effects = state.effects;
  if (!paint(state, performance.now(), passport)) {
    const moves = ({ 0: kind }) => kind === "focus" || kind === "rescue";
    held.push(...effects.filter(moves));
    effects = effects.filter((effect) => !moves(effect));
    loadPassport();
  }
  run(effects);
}

function run(effects) {
  for (const [kind, ...args] of effects) actions[kind](...args);
}

// The Passport step's script and styles load only when a visitor needs them, so the code flow never
// downloads them. Their URLs come from the template: hashed static file names work too.
function loadPassport() {
  passportLoading ??= Promise.all([
    import(app.dataset.passportScript),
    new Promise((onload, onerror) => {
      const href = app.dataset.passportStyles;
      document.head.append(Object.assign(document.createElement("link"), { rel: "stylesheet", href, onload, onerror }));
    }),
  ]).then(
    ([module]) => {
      passport = module.attach({ el, t: (key, params) => t(state, key, params), dispatch, announce, setText, clock, secondsLeft });
      hadFocus = el.card.contains(document.activeElement);
      paint(state, performance.now(), passport);
      run(held.splice(0));
    },
    () => {
      passportLoading = null;
      el.card.removeAttribute("aria-busy");
      dispatch({ type: "passport_failed" });
    },
  );
}

// The visitor's intents
const on = (name, type, handler) => el[name].addEventListener(type, handler);
const intent = (name, type) => on(name, "click", () => dispatch({ type }));
on("numberForm", "submit", (event) => {
  event.preventDefault();
  dispatch({ type: "send_code", phone: picker.e164() });
});
const typed = () => dispatch({ type: "phone_input", value: picker.e164() });
on("phoneInput", "input", typed);
on("phoneCountry", "change", typed);
picker.ready.then(typed);
on("codeForm", "submit", (event) => {
  event.preventDefault();
  dispatch({ type: "verify", value: el.codeInput.value });
});

const shape = () => {
  const v = visible(state);
  return v && codeShape(v);
};
on("codeInput", "paste", (event) => {
  const code = shape();
  if (!code?.digits) return;
  event.preventDefault();
  let digits = (event.clipboardData?.getData("text") ?? "").replace(/\D/g, "");
  if (code.length && digits.length > code.length) {
    // A missed call's code is the end of the calling number; anything else starts the paste.
    digits = code.type === "missed_call" ? digits.slice(-code.length) : digits.slice(0, code.length);
  }
  el.codeInput.value = digits;
  el.codeInput.dispatchEvent(new Event("input", { bubbles: true }));
});
on("codeInput", "input", () => {
  const code = shape();
  if (!code) return;
  const input = el.codeInput;
  if (code.digits) {
    const digits = input.value.replace(/\D/g, "").slice(0, code.length ?? undefined);
    if (digits !== input.value) input.value = digits;
  }
  dispatch({ type: "code_input", value: input.value });
});
intent("resend", "resend");
intent("sendNewCode", "send_new_code");
intent("changeNumber", "change_number");
intent("cancel", "cancel");
intent("passportStart", "passport_start");
intent("verifyAnother", "verify_another");

document.addEventListener("visibilitychange", () => {
  // Background tabs throttle timers; ask for fresh numbers when the visitor comes back.
  if (document.visibilityState === "visible") dispatch({ type: "send", message: { type: "state" }, quiet: true });
});

setInterval(() => dispatch({ type: "tick" }), 250);
el.card.setAttribute("aria-busy", "true");
typed();
if (typeof WebSocket === "undefined") {
  dispatch({ type: "unavailable" });
} else {
  setTimeout(() => dispatch({ type: "connecting" }), 1000);
  socket.open();
}
