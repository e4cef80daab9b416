// The visitor's page (protocol: docs/protocol.md). Every event goes through the reducer; the state
// it returns is painted, then its effects are run.
import { codeShape, initial, update, visible } from "./verify_state.js";
import { alert, announce, el, focus, paint, silence } from "./verify_render.js";
import { phoneInput } from "./phone_input.js";

const app = el.verification;
const data = app.dataset;
const { phoneRegions: url, phoneRegion: region, phoneOffered: regions } = data;
const picker = phoneInput(el.phoneInput, el.phoneCountry, { url, region, regions });
let strings = {};
try {
  strings = JSON.parse(el.verificationStrings.textContent);
} catch {} // a broken block shows keys, never a broken page
let state = initial(strings);
let passport, passportLoading, hadFocus;
const held = []; // focus moves waiting for the Passport step
const moves = ([kind]) => kind === "focus" || kind === "rescue";

const actions = {
  announce,
  alert,
  silence,
  send: (message) => socket?.send(JSON.stringify(message)),
  reconnect: (delay) => (retryTimer ??= setTimeout(open, delay)),
  phone: (value) => picker.set(value),
  clearCode: () => (el.codeInput.value = ""),
  loadPassport,
  focus: (target, select) => focus(target, state.step, select),
  rescue(target) {
    if (hadFocus && !document.activeElement?.offsetParent) focus(target, state.step);
  },
  solve: (challenge) =>
    import(data.challengeScript)
      .then((module) => module.solve(challenge, { workerUrl: data.challengeWorker }))
      .then(
        (answer) => dispatch({ type: "challenge_solved", answer }),
        () => dispatch({ type: "challenge_failed" }),
      ),
};
const run = (effects) => effects.forEach(([kind, ...args]) => actions[kind](...args));

// No session yet (loading writes none): the visitor's first act asks for one, then connects. A
// script's focus or event is no act.
const ACTS = ["keydown", "pointerdown", "input", "paste"];
function connectOnFirstAct() {
  const act = (event) => {
    if (!event.isTrusted) return;
    ACTS.forEach((kind) => app.removeEventListener(kind, act, true));
    fetch(data.sessionUrl, { method: "POST", headers: { "X-CSRFToken": data.csrfToken } })
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
  open();
}

// One socket at a time. What a close means, and when to retry, is the reducer's call.
let socket, retryTimer;
const base = location.href.replace("http", "ws");
const socketUrl = new URL(data.websocketPath || "/ws/verification/", base);
const closed = (code) => dispatch({ type: "close", code, random: Math.random() });
function open() {
  retryTimer = null;
  try {
    socket = new WebSocket(socketUrl);
  } catch {
    return closed(0);
  }
  const opened = socket;
  opened.onopen = () => {
    dispatch({ type: "open" });
    // The server greets every socket with `state`; if that is lost, ask.
    setTimeout(() => state.received || socket !== opened || opened.send('{"type":"state"}'), 5000);
  };
  opened.onmessage = (event) => {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    dispatch({ type: "frame", frame });
  };
  opened.onclose = ({ code }) => {
    socket = null;
    closed(code);
  };
}

function dispatch(event) {
  hadFocus = el.card.contains(document.activeElement);
  state = update(state, { ...event, now: performance.now() });
  if (paint(state, performance.now(), passport)) return run(state.effects);
  held.push(...state.effects.filter(moves));
  run(state.effects.filter((effect) => !moves(effect)));
  loadPassport();
}

function loadPassport() {
  passportLoading ??= import(data.passportScript)
    .then((module) => module.attach(data.passportStyles, dispatch))
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

const on = (name, type, handler) => el[name].addEventListener(type, handler);
const submit = (form, intent) =>
  on(form, "submit", (event) => {
    event.preventDefault();
    dispatch(intent());
  });
submit("numberForm", () => ({ type: "send_code", phone: picker.e164() }));
submit("codeForm", () => ({ type: "verify", value: el.codeInput.value }));
const typed = () => dispatch({ type: "phone_input", value: picker.e164() });
on("phoneInput", "input", typed);
on("phoneCountry", "change", typed);
picker.ready.then(typed);
const shape = () => visible(state) && codeShape(visible(state));
on("codeInput", "paste", (event) => {
  const code = shape();
  if (!code?.digits) return;
  event.preventDefault();
  const digits = (event.clipboardData?.getData("text") ?? "").replace(/\D/g, "");
  const size = code.length || digits.length;
  // A missed call's code ends the calling number; others start the paste.
  el.codeInput.value = code.type === "missed_call" ? digits.slice(-size) : digits.slice(0, size);
  el.codeInput.dispatchEvent(new Event("input", { bubbles: true }));
});
on("codeInput", "input", () => {
  const code = shape();
  const input = el.codeInput;
  if (!code) return;
  const digits = input.value.replace(/\D/g, "").slice(0, code.length || undefined);
  if (code.digits && digits !== input.value) input.value = digits;
  dispatch({ type: "code_input", value: input.value });
});
const BUTTONS = "resend send-new-code change-number cancel passport-start verify-another";
for (const id of BUTTONS.split(" ")) {
  const type = id.replaceAll("-", "_");
  document.getElementById(id).addEventListener("click", () => dispatch({ type }));
}
// Background tabs throttle timers: fresh numbers on coming back.
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) dispatch({ type: "send", message: { type: "state" }, quiet: true });
});

setInterval(() => dispatch({ type: "tick" }), 250);
el.card.setAttribute("aria-busy", "true");
typed();
if (typeof WebSocket === "undefined") dispatch({ type: "unavailable" });
else if (data.hasSession === "false") {
  dispatch({ type: "waiting" });
  connectOnFirstAct();
} else connect();
