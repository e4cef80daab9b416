// The sandbox inbox (DEBUG only): polls the codes the local Telegram sandbox delivered and shows
// them newest first, each with a copy button; and plays a visitor's Telegram app for the open
// Telegram Passport requests: Open shows a request's authorization form (verifying the phone
// first when the Passport has none), Authorize and Decline answer it; Share does it in one step.

const POLL_MS = 1000;
const FALLBACK_STRINGS = {
  copy: "Copy",
  copy_label: "Copy code {code}",
  copied: "Copied",
  code_for: "Code for {phone}",
  purpose_verify: "phone verification",
  purpose_login: "sender account sign-in",
  via: "via {type}",
  prefix: "caller number starts with {prefix}",
  open_link: "Open link",
  offline: "The inbox cannot reach the server. Retrying…",
  share: "Share {phone}",
  request: "Request open for {time}",
  shared: "Shared {phone}.",
  share_failed: "Not shared: {error}",
  open: "Open",
  asks: "{bot} asks for: {scope}",
  scope_phone_number: "phone number",
  holds: "Your Passport’s phone: {phone}",
  holds_none: "Your Passport has no phone number. Verify {phone} first; the code arrives in this inbox.",
  send_code: "Send code",
  code: "Code",
  verify: "Verify",
  authorize: "Authorize",
  decline: "Decline",
  outcome_code_sent: "Code sent to {phone}.",
  outcome_verified: "{phone} is in your Passport.",
  outcome_declined: "Declined: the bot receives nothing.",
  outcome_late: "{phone}’s app answers after the request expires.",
};

const root = document.getElementById("sandbox-inbox");
const list = document.getElementById("inbox-codes");
const empty = document.getElementById("inbox-empty");
const status = document.getElementById("inbox-status");
const strings = { ...FALLBACK_STRINGS, ...readStrings() };
let last = 0;

function readStrings() {
  try {
    return JSON.parse(document.getElementById("inbox-strings").textContent);
  } catch {
    return {};
  }
}

function t(key, params = {}) {
  return String(strings[key] ?? key).replace(/\{(\w+)\}/g, (match, name) =>
    name in params ? String(params[name]) : match,
  );
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

async function copy(code, button) {
  try {
    await navigator.clipboard.writeText(code);
  } catch {
    // Clipboard access needs a secure context or permission; select the code instead.
    const range = document.createRange();
    range.selectNodeContents(button.previousElementSibling);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    return;
  }
  button.textContent = t("copied");
  setTimeout(() => {
    button.textContent = t("copy");
  }, 1500);
}

function renderCode(item) {
  const li = element("li", "verification-inbox-item");
  li.dataset.n = String(item.n);

  // "Code for {phone}", with the number emphasised and never parsed as HTML.
  const head = element("p", "verification-inbox-head");
  const [before, after = ""] = String(strings.code_for).split("{phone}");
  const phone = element("strong", "verification-phone", item.phone);
  phone.dir = "ltr";
  head.append(before, phone, after);
  li.append(head);

  const row = element("div", "verification-inbox-row");
  const code = element("code", "verification-inbox-code", item.code);
  const button = element("button", "verification-button verification-secondary", t("copy"));
  button.type = "button";
  button.setAttribute("aria-label", t("copy_label", { code: item.code }));
  button.addEventListener("click", () => copy(item.code, button));
  row.append(code, button);
  li.append(row);

  const details = [`purpose_${item.purpose}` in strings ? t(`purpose_${item.purpose}`) : item.purpose];
  if (item.code_type) details.push(t("via", { type: item.code_type }));
  if (item.prefix) details.push(t("prefix", { prefix: item.prefix }));
  const meta = element("p", "verification-quiet");
  const time = element("time", null, new Date(item.sent_at).toLocaleTimeString());
  time.dateTime = item.sent_at;
  meta.append(time, ` · ${details.join(" · ")}`);
  if (item.url) {
    const link = element("a", null, t("open_link"));
    link.href = item.url;
    link.target = "_blank";
    link.rel = "noopener";
    meta.append(" · ", link);
  }
  li.append(meta);
  return li;
}

async function poll() {
  try {
    const url = new URL(root.dataset.codesUrl, location.href);
    url.searchParams.set("after", String(last));
    const response = await fetch(url, { cache: "no-store", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const data = await response.json();
    for (const item of data.codes ?? []) {
      if (item.n <= last) continue;
      list.prepend(renderCode(item));
      last = item.n;
    }
    if (Number.isInteger(data.last) && data.last < last) {
      // The sandbox restarted and numbers began again: start over.
      list.replaceChildren();
      last = 0;
    }
    status.hidden = true;
  } catch {
    status.textContent = t("offline");
    status.hidden = false;
  }
  empty.hidden = list.children.length > 0;
  setTimeout(poll, POLL_MS);
}

const passportList = document.getElementById("passport-requests");
const passportEmpty = document.getElementById("passport-empty");
const passportPhone = document.getElementById("passport-phone");
const passportMessage = document.getElementById("passport-message");

async function answer(id, action, extra = {}) {
  const phone = passportPhone.value.trim();
  const body = new URLSearchParams({ id, phone, action, ...extra });
  let error = "";
  let outcome = "";
  try {
    const response = await fetch(root.dataset.passportUrl, {
      method: "POST",
      body,
      headers: { "X-CSRFToken": root.dataset.csrf, Accept: "application/json" },
    });
    const data = await response.json().catch(() => ({}));
    if (response.ok) outcome = data.outcome;
    else error = data.error || response.status;
  } catch {
    error = t("offline");
  }
  if (error) passportMessage.textContent = t("share_failed", { error });
  else if (outcome === "shared") passportMessage.textContent = t("shared", { phone });
  else passportMessage.textContent = t(`outcome_${outcome}`, { phone });
  return !error;
}

async function share(id) {
  await answer(id, "share");
  pollPassport(false);
}

// The authorization form of one request, as the app shows it for the number above the list.
async function openForm(id, panel) {
  const url = new URL(root.dataset.passportUrl, location.href);
  url.searchParams.set("phone", passportPhone.value.trim());
  let form = null;
  try {
    const response = await fetch(url, { cache: "no-store" });
    const { requests = [] } = response.ok ? await response.json() : {};
    form = requests.find((request) => request.id === id)?.form ?? null;
  } catch {
    // The codes poll already says the server is unreachable.
  }
  panel.replaceChildren();
  panel.hidden = false;
  if (!form) return;
  const scope = form.asks.map((name) => (`scope_${name}` in strings ? t(`scope_${name}`) : name)).join(", ");
  panel.append(element("p", "passport-asks", t("asks", { bot: form.bot, scope })));
  const phone = passportPhone.value.trim();
  const actions = element("div", "verification-inbox-row");
  if (form.phone) {
    panel.append(element("p", "passport-holds", t("holds", { phone: form.phone })));
  } else {
    panel.append(element("p", "passport-holds", t("holds_none", { phone })));
    const send = element("button", "verification-button verification-secondary passport-send-code", t("send_code"));
    send.type = "button";
    const code = element("input", "passport-code");
    code.inputMode = "numeric";
    code.autocomplete = "one-time-code";
    code.setAttribute("aria-label", t("code"));
    const verify = element("button", "verification-button verification-secondary passport-verify", t("verify"));
    verify.type = "button";
    send.addEventListener("click", () => answer(id, "send_code").then((ok) => ok && code.focus()));
    verify.addEventListener("click", async () => {
      if (await answer(id, "verify_phone", { code: code.value.trim() })) openForm(id, panel);
    });
    const row = element("div", "verification-inbox-row");
    row.append(send, code, verify);
    panel.append(row);
  }
  const authorize = element("button", "verification-button passport-authorize", t("authorize"));
  authorize.type = "button";
  authorize.disabled = !form.phone;
  authorize.addEventListener("click", async () => {
    await answer(id, "authorize");
    pollPassport(false);
  });
  const decline = element("button", "verification-button verification-secondary passport-decline", t("decline"));
  decline.type = "button";
  decline.addEventListener("click", async () => {
    if (await answer(id, "decline")) panel.hidden = true;
  });
  actions.append(authorize, decline);
  panel.append(actions);
}

function renderRequest(request) {
  const li = element("li", "verification-inbox-item");
  const minutes = Math.floor(request.expires_in / 60);
  const time = `${minutes}:${String(request.expires_in % 60).padStart(2, "0")}`;
  li.append(element("p", "verification-quiet", t("request", { time })));
  const button = element("button", "verification-button verification-secondary");
  button.type = "button";
  button.textContent = t("share", { phone: passportPhone.value.trim() });
  button.dataset.id = request.id;
  button.addEventListener("click", () => share(request.id));
  const open = element("button", "verification-button verification-secondary", t("open"));
  open.type = "button";
  open.dataset.open = request.id;
  const panel = element("div", "passport-form");
  panel.hidden = true;
  open.addEventListener("click", () => openForm(request.id, panel));
  li.append(open, button, panel);
  return li;
}

// Buttons say the number they will share.
passportPhone.addEventListener("input", () => {
  // An open form was the previous number's: close it.
  for (const panel of passportList.querySelectorAll(".passport-form")) panel.hidden = true;
  for (const button of passportList.querySelectorAll("button[data-id]")) {
    button.textContent = t("share", { phone: passportPhone.value.trim() });
  }
});

async function pollPassport(again = true) {
  try {
    const response = await fetch(root.dataset.passportUrl, { cache: "no-store" });
    if (response.ok) {
      const { requests = [] } = await response.json();
      // Keep the list (and focus in it) unless the open requests changed.
      const ids = requests.map((request) => request.id).join();
      if (passportList.dataset.ids !== ids) {
        passportList.dataset.ids = ids;
        passportList.replaceChildren(...requests.map(renderRequest));
      } else {
        requests.forEach((request, i) => {
          passportList.children[i].firstChild.textContent = renderRequest(request).firstChild.textContent;
        });
      }
      passportEmpty.hidden = requests.length > 0;
    }
  } catch {
    // The codes poll already says the server is unreachable.
  }
  if (again) setTimeout(pollPassport, POLL_MS);
}

poll();
pollPassport();
