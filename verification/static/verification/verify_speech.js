// The page's live regions: errors interrupt (role=alert), everything else waits its turn.
const alertRegion = document.getElementById("verification-alert");
const announcer = document.getElementById("verification-announcer");
const speaking = new Map();

// Empties a region (and drops a message about to be spoken), so nothing stale is read later.
function silence(region = alertRegion) {
  clearTimeout(speaking.get(region));
  region.textContent = "";
}

// Clearing a region first makes a repeated message be read again.
function speak(region, text) {
  silence(region);
  speaking.set(region, setTimeout(() => (region.textContent = text), 60));
}

export const announce = (text) => speak(announcer, text);
export const alert = (text) => speak(alertRegion, text);
export { silence };
