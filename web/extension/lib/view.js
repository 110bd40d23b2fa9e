/** Pure view logic of the popup: which screen a state shows, and the words on it. */

export const FINAL = ["approved", "denied", "not_me", "wrong_number", "expired", "failed", "cancelled"];

/** "no_vault" | "locked" | "request" | "unlocked" for a state snapshot from the host. */
export function screenFor(state) {
  if (!state.vault.exists) return "no_vault";
  if (state.vault.unlocked) return "unlocked";
  const u = state.unlock;
  if (u && u.state !== "cancelled") return "request";
  return "locked";
}

/** The short status word shown on the request screen, and whether it is final. */
export function requestStatus(unlock) {
  const words = {
    waiting: "Sent — waiting for your phone",
    seen: "Scanned — approve on your phone",
    approved: "Approved",
    denied: "Denied on the phone",
    not_me: "Your phone said: I did not ask for this",
    wrong_number: "Wrong number picked on the phone",
    expired: "Expired",
    failed: "Failed",
    cancelled: "Cancelled",
  };
  return { text: words[unlock.state] || unlock.state, final: FINAL.includes(unlock.state), detail: unlock.message || "" };
}

/** Seconds as m:ss. */
export function mmss(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}
