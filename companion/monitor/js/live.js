// The page's one live connection: a WebSocket to /api/monitor/live on this origin. The
// token goes in the first message (never in the URL); then the page says what it shows and
// the server sends a `tick` a few times a second, the histogram when it changes, and new
// log lines. The server ends the session with an `end` message (expired, logged out, user
// changed); any other drop is retried with a growing pause.

import { session, endSession } from './api.js';

export class Live {
  /**
   * @param {object} on - handlers: hello(msg), tick(msg), histogram(msg), logs(entries),
   *   link(up: boolean), error(text)
   */
  constructor(on) {
    this.on = on;
    this.ws = null;
    this.want = { vars: [], histogram: false, logs_from: 0 };
    this.retry = 0;
    this.timer = null;
    this.stopped = true;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000);
      this.ws = null;
    }
    this.on.link(false);
  }

  /** Replaces what the page shows; sent at once when connected. */
  show(want) {
    this.want = { ...this.want, ...want };
    this.send({ t: 'watch', vars: this.want.vars, histogram: this.want.histogram, logs_from: this.want.logs_from });
  }

  /** The next log entry wanted after a reconnect (entries already shown are not sent again). */
  logsSeen(lastId) {
    this.want.logs_from = lastId + 1;
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.ready) this.ws.send(JSON.stringify(msg));
  }

  connect() {
    if (this.stopped || !session.token) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/api/monitor/live`);
    this.ws = ws;
    this.ready = false;
    ws.onopen = () => {
      ws.send(JSON.stringify({ t: 'auth', token: session.token }));
    };
    ws.onmessage = (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      switch (msg.t) {
        case 'hello':
          this.retry = 0;
          this.ready = true;
          this.on.link(true);
          this.on.hello(msg);
          this.show({});
          break;
        case 'tick':
          this.on.tick(msg);
          break;
        case 'histogram':
          this.on.histogram(msg);
          break;
        case 'logs':
          if (msg.entries.length) this.logsSeen(msg.entries[msg.entries.length - 1].id);
          this.on.logs(msg.entries);
          break;
        case 'error':
          this.on.error(msg.msg);
          break;
        case 'end':
          this.stopped = true;
          endSession(`Signed out: ${msg.reason}`);
          break;
        default:
          break;
      }
    };
    ws.onclose = () => {
      this.ws = null;
      this.ready = false;
      this.on.link(false);
      if (this.stopped) return;
      const pause = [500, 1000, 2000, 5000][Math.min(this.retry, 3)];
      this.retry += 1;
      this.timer = setTimeout(() => this.connect(), pause);
    };
  }
}
