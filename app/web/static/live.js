// The branch, live: the websocket stream (SPEC §3) with reconnection, and the queue view.
//
// - The stream's first message is a snapshot (the queue view and the seq it includes); then one
//   message per event, seq strictly increasing. We remember the last seq we have seen and
//   reconnect with `since=<last seq>` after exponential backoff, so nothing is missed and nothing
//   is taken twice: an event with seq <= the last seen one is ignored.
// - Events say what happened, not the whole picture, so after events the queue view is fetched
//   again (debounced) to redraw counts and counters.
// - While the stream is not connected, the queue view is polled; calls found there with a seq
//   above the last seen one are passed on as events, so a screen keeps working (a little later)
//   even when websockets are blocked by a proxy.

import { api, ApiError, page, getToken, showConnection } from './common.js';

const STABLE_MS = 5000; // a connection that lasted this long resets the backoff
const LIVE_AFTER_MS = 800; // open this long without being closed: the server took us
const PING_MS = 20000;
const SILENT_MS = 50000; // nothing heard for this long: the connection is dead

export class Live {
  constructor({ onView = () => {}, onEvent = () => {}, pollMs = 3000, maxBackoffMs = 15000 } = {}) {
    this.onView = onView;
    this.onEvent = onEvent;
    this.pollMs = pollMs;
    this.maxBackoffMs = maxBackoffMs;
    this.seq = null; // last seq seen (snapshot or event)
    this.primed = false; // a first view has been drawn: later calls are news
    this.ws = null;
    this.wsOpen = false;
    this.attempt = 0;
    this.retryTimer = null;
    this.pollTimer = null;
    this.refreshTimer = null;
    this.refreshing = null;
    this.refreshAgain = false;
    this.state = 'connecting';
  }

  start() {
    showConnection('connecting');
    this.refresh();
    this.connect();
    this.startPolling();
  }

  setState(state) {
    this.state = state;
    showConnection(state);
  }

  streamUrl() {
    const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = new URL(
      `${scheme}//${window.location.host}/api/v1/branches/${encodeURIComponent(page.branch)}/stream`,
    );
    const token = getToken();
    if (token) url.searchParams.set('token', token);
    if (this.seq !== null) url.searchParams.set('since', String(this.seq));
    return url.href;
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    let ws;
    try {
      ws = new WebSocket(this.streamUrl());
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    let stableTimer = null;
    let liveTimer = null;
    let pingTimer = null;
    let lastHeard = Date.now();
    const markLive = () => {
      clearTimeout(liveTimer);
      if (this.ws !== ws || this.wsOpen) return;
      this.wsOpen = true;
      this.stopPolling();
      this.setState('live');
      stableTimer = setTimeout(() => {
        this.attempt = 0;
      }, STABLE_MS);
      // Counts may have moved while we were away, whatever the stream replays.
      this.scheduleRefresh(0);
    };
    ws.addEventListener('open', () => {
      if (this.ws !== ws) return;
      // The server accepts, then closes at once if it refuses the token: wait a moment (or for
      // the first message) before calling the connection live.
      liveTimer = setTimeout(markLive, LIVE_AFTER_MS);
      // A connection that went silent (a cable pulled, a proxy that forgot us) is closed and
      // opened again; the server answers our pings and sends its own keepalives.
      pingTimer = setInterval(() => {
        if (Date.now() - lastHeard > SILENT_MS) {
          ws.close();
          return;
        }
        try {
          ws.send('{"type":"ping"}');
        } catch {
          /* closing */
        }
      }, PING_MS);
    });
    ws.addEventListener('message', (message) => {
      if (this.ws !== ws) return;
      lastHeard = Date.now();
      markLive();
      let data;
      try {
        data = JSON.parse(message.data);
      } catch {
        return;
      }
      this.handle(data);
    });
    ws.addEventListener('close', () => {
      clearTimeout(stableTimer);
      clearTimeout(liveTimer);
      clearInterval(pingTimer);
      if (this.ws !== ws) return;
      this.ws = null;
      this.wsOpen = false;
      if (this.state === 'live') this.setState('connecting');
      this.startPolling();
      this.refresh();
      this.scheduleReconnect();
    });
  }

  scheduleReconnect() {
    if (this.retryTimer) return;
    const base = Math.min(this.maxBackoffMs, 1000 * 2 ** this.attempt);
    const delay = base * (0.75 + Math.random() * 0.5);
    this.attempt = Math.min(this.attempt + 1, 10);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  handle(message) {
    if (message.type === 'snapshot') {
      if (typeof message.seq === 'number') {
        this.seq = this.seq === null ? message.seq : Math.max(this.seq, message.seq);
      }
      if (message.data) {
        this.applyView(message.data, true);
        // A snapshot is the whole view as of now: the refresh going live asked for is not needed.
        clearTimeout(this.refreshTimer);
      }
      return;
    }
    if (typeof message.seq !== 'number') return;
    if (this.seq !== null && message.seq <= this.seq) return; // seen already: not news
    this.seq = message.seq;
    this.onEvent(message, { replayed: false });
    this.scheduleRefresh();
  }

  applyView(view, snapshot) {
    this.primed = true;
    this.onView(view, { snapshot });
  }

  scheduleRefresh(delay = 250) {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.refresh(), delay);
  }

  async refresh() {
    if (this.refreshing) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      try {
        const view = await api(`/branches/${encodeURIComponent(page.branch)}/queue`);
        if (!this.wsOpen) {
          this.takeCallsFromView(view);
          this.setState('polling');
        }
        this.applyView(view, false);
      } catch (error) {
        if (!this.wsOpen) this.setState('offline');
        if (!(error instanceof ApiError) || error.status === 0 || error.status >= 500) return;
        throw error;
      } finally {
        this.refreshing = null;
        if (this.refreshAgain) {
          this.refreshAgain = false;
          this.scheduleRefresh(0);
        }
      }
    })();
    return this.refreshing.catch(() => {});
  }

  /** Without the stream: calls in the view with a seq above the last seen are news. */
  takeCallsFromView(view) {
    const calls = (view.recent_calls || [])
      .filter((call) => typeof call.seq === 'number' && (this.seq === null || call.seq > this.seq))
      .sort((a, b) => a.seq - b.seq);
    if (!calls.length) return;
    if (this.primed) {
      for (const call of calls) {
        this.onEvent(
          {
            type: call.type,
            seq: call.seq,
            at: call.at,
            data: { ticket: call.ticket, counter: call.counter, announcement: call.announcement },
          },
          { replayed: false, polled: true },
        );
      }
    }
    this.seq = Math.max(this.seq ?? 0, calls[calls.length - 1].seq);
  }

  startPolling() {
    if (this.pollTimer) return;
    this.pollTimer = setInterval(() => {
      if (!this.wsOpen) this.refresh();
    }, this.pollMs);
  }

  stopPolling() {
    clearInterval(this.pollTimer);
    this.pollTimer = null;
  }
}
