// The server's deadlines, counted down locally (`now` in ms).
export const deadline = (seconds, now) => (seconds == null ? null : now + Number(seconds) * 1000);
export const secondsLeft = (at, now) => (at == null ? 0 : Math.max(0, Math.ceil((at - now) / 1000)));

export function clock(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  const pad = (n) => String(n).padStart(2, "0");
  const m = Math.floor((s % 3600) / 60);
  return s >= 3600 ? `${Math.floor(s / 3600)}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

export function resendSlot(state, v, now) {
  const { resendAt, expiresAt } = state;
  // Nothing is offered that could only come after the code expired.
  const outlasts = expiresAt != null && resendAt != null && resendAt >= expiresAt;
  if (!v.next_type || outlasts || [state.resendUnavailableId, state.codeExpiredId].includes(v.id)) {
    return { mode: "hidden" };
  }
  if (state.pending.resend || (v.status === "sending" && v.code)) return { mode: "requesting" };
  const left = secondsLeft(resendAt, now);
  return left ? { mode: "countdown", left } : { mode: "button" };
}

// Equal jitter: tabs dropped together by a restart come back apart.
export const backoff = (failures, random) => Math.min(30, 2 ** (failures - 1)) * (1 + random) * 500;
