// Live regions: errors interrupt (role=alert), the rest waits its turn.
const alertRegion = document.getElementById("verification-alert");
const announcer = document.getElementById("verification-announcer");
const speaking = new Map();

// Drops a message about to be spoken too, so nothing stale is read later.
function silence(region = alertRegion) {
  clearTimeout(speaking.get(region));
  region.textContent = "";
}

// Emptied first, a repeated message is read again.
function speak(region, text) {
  silence(region);
  speaking.set(region, setTimeout(() => (region.textContent = text), 60));
}

export const announce = (text) => speak(announcer, text);
export const alert = (text) => speak(alertRegion, text);
export { silence };
