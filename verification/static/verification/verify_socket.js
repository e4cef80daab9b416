// One socket at a time. What a close means, and when to retry, is the reducer's call.
export function connection(url, dispatch, received) {
  let socket, timer;
  const closed = (code) => dispatch({ type: "close", code, random: Math.random() });

  function open() {
    timer = null;
    try {
      socket = new WebSocket(url);
    } catch {
      return closed(0);
    }
    const opened = socket;
    opened.onopen = () => {
      dispatch({ type: "open" });
      // The server greets every socket with `state`; if that is lost, ask.
      setTimeout(() => received() || socket !== opened || opened.send('{"type":"state"}'), 5000);
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
    opened.onclose = (event) => {
      socket = null;
      closed(event.code);
    };
  }

  return {
    open,
    send: (message) => socket?.send(JSON.stringify(message)),
    later: (delay) => (timer ??= setTimeout(open, delay)),
  };
}
