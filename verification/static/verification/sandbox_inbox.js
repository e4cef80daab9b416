// The sandbox inbox (DEBUG only): polls the codes the local Telegram sandbox delivered and shows
// them newest first, each with a copy button; and plays a visitor's Telegram app for the open
// Telegram Passport requests (Share answers one as Authorize would).

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

async function share(id) {
  const phone = passportPhone.value.trim();
  const body = new URLSearchParams({ id, phone });
  let error = "";
  try {
    const response = await fetch(root.dataset.passportUrl, {
      method: "POST",
      body,
      headers: { "X-CSRFToken": root.dataset.csrf, Accept: "application/json" },
    });
    if (!response.ok) error = (await response.json().catch(() => ({}))).error || response.status;
  } catch {
    error = t("offline");
  }
  passportMessage.textContent = error ? t("share_failed", { error }) : t("shared", { phone });
  pollPassport(false);
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
  li.append(button);
  return li;
}

// Buttons say the number they will share.
passportPhone.addEventListener("input", () => {
  for (const button of passportList.querySelectorAll("button")) {
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
