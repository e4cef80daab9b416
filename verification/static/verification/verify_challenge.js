// Solves a `hashcash` challenge (docs/protocol.md) in a Web Worker, so the page stays responsive.
// The visitor page imports this module only when the server asks for a challenge. A challenge
// class of the site's own names another module with the same export (docs/security.md).

/**
 * The answer to `challenge`, for the `challenge` field of the repeated `send_code`.
 * `workerUrl` is the worker script's URL (the page has it from its template, so hashed static
 * names work); `signal` aborts the work.
 */
export function solve(challenge, { workerUrl, signal } = {}) {
  return new Promise((resolve, reject) => {
    if (challenge.kind !== "hashcash") {
      reject(new Error(`No solver for challenge kind ${challenge.kind}`));
      return;
    }
    const worker = new Worker(workerUrl);
    const stop = () => worker.terminate();
    signal?.addEventListener(
      "abort",
      () => {
        stop();
        reject(signal.reason);
      },
      { once: true },
    );
    // A readiness flag for tests, as data-connection is.
    document.documentElement.dataset.challenge = "solving";
    worker.onmessage = ({ data }) => {
      stop();
      document.documentElement.dataset.challenge = "solved";
      resolve({ token: challenge.token, nonce: data.nonce });
    };
    worker.onerror = (event) => {
      stop();
      event.preventDefault();
      reject(new Error(event.message || "The challenge worker failed"));
    };
    worker.postMessage({ token: challenge.token, difficulty: challenge.difficulty });
  });
}
