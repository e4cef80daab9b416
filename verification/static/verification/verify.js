// The visitor's page (protocol: docs/protocol.md). Every event goes through the reducer; the state
// it returns is painted, then its effects are run.
import { codeShape, initial, update, visible } from "./verify_state.js";
import { el, focus, paint } from "./verify_render.js";
import { alert, announce, silence } from "./verify_speech.js";
import { connection } from "./verify_socket.js";
import { phoneInput } from "./phone_input.js";

const app = el.verification;
const { phoneRegions: url, phoneRegion: region, phoneOffered: regions } = app.dataset;
const picker = phoneInput(el.phoneInput, el.phoneCountry, { url, region, regions });
let strings = {};
try {
  strings = JSON.parse(el.verificationStrings.textContent);
} catch {} // a broken block shows keys, never a broken page
let state = initial(strings);
let passport = null; // paints the Passport step once loaded
let passportLoading = null;
let held = []; // focus moves waiting for the Passport step
let hadFocus = false; // focus was in the card before the paint

const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const path = app.dataset.websocketPath || "/ws/verification/";
const socket = connection(`${scheme}//${location.host}${path}`, dispatch, () => state.received);
const moves = ([kind]) => kind === "focus" || kind === "rescue";

const actions = {
  announce,
  alert,
  silence,
  send: socket.send,
  reconnect: socket.later,
  phone: (value) => picker.set(value),
  clearCode: () => (el.codeInput.value = ""),
  loadPassport,
  focus: (target, select) => focus(target, state.step, select),
  rescue(target) {
    const active = document.activeElement;
    if (hadFocus && (!active || active === document.body || active.offsetParent === null)) {
      focus(target, state.step);
    }
  },
};
const run = (effects) => effects.forEach(([kind, ...args]) => actions[kind](...args));
const { challengeScript, challengeWorker: workerUrl, sessionUrl, csrfToken } = app.dataset;

// A challenge before a send: its module (a worker inside) loads only when the server asks.
actions.solve = (challenge) =>
  import(challengeScript)
    .then((module) => module.solve(challenge, { workerUrl }))
    .then(
      (answer) => dispatch({ type: "challenge_solved", answer }),
      () => dispatch({ type: "challenge_failed" }),
    );

// No session yet (loading writes none): the visitor's first act asks for one, then connects. A
// script's focus or event is no act.
const ACTS = ["keydown", "pointerdown", "input", "paste"];
function connectOnFirstAct() {
  const act = (event) => {
    if (!event.isTrusted) return;
    ACTS.forEach((kind) => app.removeEventListener(kind, act, true));
    fetch(sessionUrl, { method: "POST", headers: { "X-CSRFToken": csrfToken } })
      .then((response) => (response.ok ? connect() : response.json().then((e) => Promise.reject(e))))
      .catch((e) => {
        dispatch({ type: "session_failed", message: e?.message, retryAfter: e?.retry_after });
        connectOnFirstAct();
      });
  };
  ACTS.forEach((kind) => app.addEventListener(kind, act, true));
}
function connect() {
  setTimeout(() => dispatch({ type: "connecting" }), 1000);
  socket.open();
}

function dispatch(event) {
  hadFocus = el.card.contains(document.activeElement);
  state = update(state, { ...event, now: performance.now() });
  if (paint(state, performance.now(), passport)) return run(state.effects);
  held.push(...state.effects.filter(moves));
  run(state.effects.filter((effect) => !moves(effect)));
  loadPassport();
}

// The Passport step loads only when needed, from the template's (hashed) URLs.
function loadPassport() {
  passportLoading ??= import(app.dataset.passportScript)
    .then((module) => module.attach(app.dataset.passportStyles, dispatch))
    .then(
      (painter) => {
        passport = painter;
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
const submit = (form, type, input, key) =>
  on(form, "submit", (event) => {
    event.preventDefault();
    dispatch({ type, [key]: el[input].value });
  });
on("numberForm", "submit", (event) => {
  event.preventDefault();
  dispatch({ type: "send_code", phone: picker.e164() });
});
submit("codeForm", "verify", "codeInput", "value");
const typed = () => dispatch({ type: "phone_input", value: picker.e164() });
on("phoneInput", "input", typed);
on("phoneCountry", "change", typed);
picker.ready.then(typed);
const shape = () => visible(state) && codeShape(visible(state));
on("codeInput", "paste", (event) => {
  const code = shape();
  if (!code?.digits) return;
  event.preventDefault();
  let digits = (event.clipboardData?.getData("text") ?? "").replace(/\D/g, "");
  if (code.length && digits.length > code.length) {
    // A missed call's code ends the calling number; others start the paste.
    digits = code.type === "missed_call" ? digits.slice(-code.length) : digits.slice(0, code.length);
  }
  el.codeInput.value = digits;
  el.codeInput.dispatchEvent(new Event("input", { bubbles: true }));
});
on("codeInput", "input", () => {
  const code = shape();
  const input = el.codeInput;
  if (!code) return;
  const digits = input.value.replace(/\D/g, "").slice(0, code.length ?? undefined);
  if (code.digits && digits !== input.value) input.value = digits;
  dispatch({ type: "code_input", value: input.value });
});
for (const [name, type] of Object.entries({
  resend: "resend",
  sendNewCode: "send_new_code",
  changeNumber: "change_number",
  cancel: "cancel",
  passportStart: "passport_start",
  verifyAnother: "verify_another",
})) {
  on(name, "click", () => dispatch({ type }));
}
// Background tabs throttle timers: fresh numbers on coming back.
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) dispatch({ type: "send", message: { type: "state" }, quiet: true });
});

setInterval(() => dispatch({ type: "tick" }), 250);
el.card.setAttribute("aria-busy", "true");
typed();
if (typeof WebSocket === "undefined") dispatch({ type: "unavailable" });
else if (app.dataset.hasSession === "false") {
  dispatch({ type: "waiting" });
  connectOnFirstAct();
} else connect();
