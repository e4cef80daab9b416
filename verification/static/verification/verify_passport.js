// The Telegram Passport step of the visitor page. verify.js imports it only when a visitor picks
// Passport or resumes a Passport verification; it paints the step from the reducer's state.
import { announce, el, setText } from "./verify_render.js";
import { t as translate } from "./verify_state.js";
import { clock, secondsLeft } from "./verify_timers.js";

// The request's link and QR code come once, in `passport_request`; they are kept for reloads and
// other tabs. A tab without them asks for a new request (once), which every tab then receives.
const STORAGE_KEY = "verification-passport";

function stored(id) {
  try {
    const link = JSON.parse(localStorage.getItem(STORAGE_KEY));
    return link?.id === id ? link : null;
  } catch {
    return null;
  }
}

function store(link) {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(link));
  } catch {
    // Private mode or a full store: this tab still shows the link, reloads ask for a new one.
  }
}

// Resolves, once the step's styles (at `href`) are in force, to the step's painter.
export async function attach(href, dispatch) {
  await new Promise((onload, onerror) => {
    const styles = { rel: "stylesheet", href, onload, onerror };
    document.head.append(Object.assign(document.createElement("link"), styles));
  });
  let link = null;
  let renewed = null; // a request whose link this tab no longer had, asked for again
  let received = null; // a request whose arrival was announced

  el.passportCancel.addEventListener("click", () => dispatch({ type: "leave" }));

  return function paint(v, state, now) {
    const t = (key, params) => translate(state, key, params);
    if (state.passportLink?.id === v.id) link = state.passportLink;
    else if (link?.id !== v.id) link = stored(v.id);
    if (!link) {
      el.passportOpen.removeAttribute("href");
      if (renewed !== v.id && v.status === "waiting") {
        renewed = v.id;
        const message = { type: "passport_start" };
        queueMicrotask(() => dispatch({ type: "send", message, quiet: true }));
      }
    } else if (el.passportOpen.getAttribute("href") !== link.url) {
      store(link);
      el.passportOpen.href = link.url;
      el.passportQr.innerHTML = link.qr; // made by our server (segno), never from the visitor
      const svg = el.passportQr.querySelector("svg");
      if (svg) {
        // Scales with its box: the server's pixel size becomes the drawing's coordinates.
        const [width, height] = ["width", "height"].map((name) => svg.getAttribute(name));
        svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
        svg.removeAttribute("width");
        svg.removeAttribute("height");
        svg.setAttribute("role", "img");
        svg.setAttribute("aria-label", t("passport_qr"));
      }
    }
    if (v.status === "received" && received !== v.id) {
      received = v.id;
      announce(t("passport_received"));
    }
    const time = clock(secondsLeft(state.expiresAt, now));
    const waiting = v.status !== "received";
    setText(el.passportStatus, t(waiting ? "passport_expires" : "passport_received", { time }));
  };
}
