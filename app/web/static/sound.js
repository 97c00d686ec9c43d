// The lobby speaker: a two-tone chime made with WebAudio (no audio files), then the announcement,
// either spoken by the browser's speech synthesis (Chinese, then English) or played from the
// audio the server rendered (SPEC §3, `announcement.audio`). Announcements queue up and are
// played one after the other, each `repeat` times.
//
// Which one speaks is the branch's `announcement.mode`:
//   browser  the browser's voice, always (its default voice when it has no Chinese one);
//   server   the server's audio, always (the browser's voice if an announcement has none or it
//            cannot be fetched);
//   auto     a Chinese browser voice on this machine when there is one (voice.js), else the
//            server's audio, else the browser's default voice (or a network voice).
//
// Browsers only make sound after a user gesture unless told otherwise: a lobby TV runs Chromium
// with --autoplay-policy=no-user-gesture-required (docs/ui.md); elsewhere the page shows a
// "tap to enable sound" button.

import { chooseEnglishVoice, chooseVoice, findPreferred, wantsCantonese } from './voice.js';

const CHIME = [
  [659.25, 0.0], // E5
  [523.25, 0.42], // C5
];
const CHIME_MS = 1300;
const REPEAT_GAP_MS = 700;
const MODES = new Set(['browser', 'server', 'auto']);
const RATE_ZH = 0.9;
const RATE_EN = 0.95;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const clamp = (value, low, high) => Math.min(high, Math.max(low, value));

/** The branch's `announcement` settings, with SPEC §3's defaults for anything missing. */
export function announcementSettings(announcement) {
  const a = announcement || {};
  const repeat = Number.parseInt(a.repeat, 10);
  const rate = Number(a.rate);
  return {
    mode: MODES.has(a.mode) ? a.mode : 'auto',
    repeat: Number.isFinite(repeat) ? clamp(repeat, 1, 3) : 1,
    rate: a.rate !== null && a.rate !== undefined && Number.isFinite(rate) && rate > 0 ? clamp(rate, 0.5, 2) : null,
    voice: typeof a.voice === 'string' && a.voice.trim() ? a.voice.trim() : null,
  };
}

export class Announcer {
  /**
   * onSpeak(item): an announcement starts (after the chime).
   * onPlayed(record): one rendition ended: {seq, via: 'browser'|'server', voice, lang,
   *   spoken (the Chinese utterance: 'end', 'error: …', 'timeout'), url, duration (s),
   *   fetchMs (from the event to the audio in hand), error}.
   * onStatus(status): what will speak changed: {source: 'browser'|'server'|'default'|'none',
   *   voice, lang, mode, preferred, found}.
   * fetchAudio(url): the server's audio as an ArrayBuffer (the page adds its token).
   */
  constructor({
    onSpeak = () => {},
    onNeedsGesture = () => {},
    onPlayed = () => {},
    onStatus = () => {},
    fetchAudio = null,
    voiceSetting = null,
  } = {}) {
    this.onSpeak = onSpeak;
    this.onNeedsGesture = onNeedsGesture;
    this.onPlayed = onPlayed;
    this.onStatus = onStatus;
    this.fetchAudio = fetchAudio;
    this.voiceSetting = voiceSetting; // this screen's ?voice=, before the branch's default
    this.settings = announcementSettings(null);
    this.queue = [];
    this.running = false;
    this.context = null;
    this.voices = [];
    this.zhVoice = null;
    this.enVoice = null;
    this.hasSpeech = 'speechSynthesis' in window;
    if (this.hasSpeech) {
      const load = () => {
        this.voices = window.speechSynthesis.getVoices() || [];
        this.chooseVoices();
      };
      load();
      window.speechSynthesis.addEventListener?.('voiceschanged', load);
    }
    this.chooseVoices();
  }

  /** The branch's `announcement` object (GET /branches/{b}). */
  configure(announcement) {
    this.settings = announcementSettings(announcement);
    this.chooseVoices();
  }

  get preferredVoice() {
    return this.voiceSetting || this.settings.voice;
  }

  chooseVoices() {
    const preferred = this.preferredVoice;
    this.zhVoice = chooseVoice(this.voices, { preferred, cantonese: wantsCantonese(preferred) });
    this.enVoice = chooseEnglishVoice(this.voices);
    this.preferredFound = Boolean(preferred && findPreferred(this.voices, preferred));
    this.onStatus(this.status());
  }

  /** Does the browser voice speak in `auto` mode? A local Chinese voice does; a network one
   * (Chrome's "Google 普通话", Edge's "Online (Natural)" voices) needs the internet, so the server's
   * audio goes first unless the voice was asked for by name. */
  get browserVoiceServes() {
    const voice = this.zhVoice;
    return Boolean(voice && (voice.localService !== false || this.preferredFound));
  }

  /** What speaks the next announcement, for the status line. */
  status() {
    const { mode } = this.settings;
    const preferred = this.preferredVoice;
    const voice = this.zhVoice;
    const found = !preferred || this.preferredFound;
    const base = { mode, preferred, found, voices: this.voices.length, voice: null, lang: null };
    const serverFirst = mode === 'server' || (mode === 'auto' && !this.browserVoiceServes);
    if (serverFirst && this.fetchAudio) return { ...base, source: 'server' };
    if (voice) return { ...base, source: 'browser', voice: voice.name, lang: voice.lang };
    return { ...base, source: this.hasSpeech ? 'default' : 'none' };
  }

  /** Server audio or the browser's voice for this announcement. */
  plan(item) {
    const { mode } = this.settings;
    if (!item.audio || !this.fetchAudio || mode === 'browser') return 'browser';
    if (mode === 'server') return 'server';
    return this.browserVoiceServes ? 'browser' : 'server';
  }

  audioContext() {
    if (this.context) return this.context;
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return null;
    try {
      this.context = new Context();
    } catch {
      this.context = null;
    }
    return this.context;
  }

  /** Is sound blocked until the user touches the page? */
  get blocked() {
    const context = this.audioContext();
    return Boolean(context && context.state === 'suspended');
  }

  /** Call from a click or key handler: lets the page make sound from now on. */
  async unlock() {
    const context = this.audioContext();
    if (context && context.state === 'suspended') {
      try {
        await context.resume();
      } catch {
        /* stays silent */
      }
    }
    if (this.hasSpeech) {
      const silent = new SpeechSynthesisUtterance(' ');
      silent.volume = 0;
      window.speechSynthesis.speak(silent);
    }
  }

  /** Queue an announcement: {seq, zh, en, audio, receivedAt}. The server's audio is fetched at
   * once (while the chime rings), never before the call is on screen. */
  announce(item) {
    const entry = { ...item, via: this.plan(item) };
    if (entry.via === 'server') entry.download = this.download(entry);
    this.queue.push(entry);
    if (!this.running) this.run();
  }

  async download(item) {
    const started = performance.now();
    const since = Number.isFinite(item.receivedAt) ? item.receivedAt : started;
    try {
      const data = await this.fetchAudio(item.audio);
      return { data, fetchMs: Math.round(performance.now() - since), error: null };
    } catch (error) {
      return { data: null, fetchMs: Math.round(performance.now() - since), error: String(error?.message || error) };
    }
  }

  async run() {
    this.running = true;
    try {
      while (this.queue.length) {
        const item = this.queue.shift();
        await this.chime();
        this.onSpeak(item);
        if (item.via === 'server') await this.playServer(item);
        else await this.speakTimes(item, this.settings.repeat);
        await sleep(400);
      }
    } finally {
      this.running = false;
    }
  }

  async speakTimes(item, times) {
    for (let i = 0; i < times; i += 1) {
      if (i > 0) await sleep(REPEAT_GAP_MS);
      const voice = this.zhVoice;
      const started = performance.now();
      const spoken = await this.say(item.zh, 'zh-CN', voice);
      const duration = (performance.now() - started) / 1000;
      await this.say(item.en, 'en-US', this.enVoice);
      this.onPlayed({
        seq: item.seq,
        via: 'browser',
        voice: voice ? voice.name : null,
        lang: voice ? voice.lang : null,
        spoken,
        url: null,
        duration,
        fetchMs: null,
        error: null,
      });
    }
  }

  /** The server's audio, `repeat` times; the browser's voice if it cannot be played. */
  async playServer(item) {
    const { data, fetchMs, error } = await item.download;
    let buffer = null;
    let problem = error;
    if (data) {
      try {
        buffer = await this.decode(data);
      } catch (decodeError) {
        problem = `cannot decode the audio: ${decodeError?.message || decodeError}`;
      }
    }
    const record = { seq: item.seq, via: 'server', voice: null, lang: null, spoken: null, url: item.audio, fetchMs };
    if (!buffer) {
      this.onPlayed({ ...record, duration: 0, error: problem || 'no audio' });
      await this.speakTimes(item, this.settings.repeat);
      return;
    }
    for (let i = 0; i < this.settings.repeat; i += 1) {
      if (i > 0) await sleep(REPEAT_GAP_MS);
      const played = await this.playBuffer(buffer);
      this.onPlayed({ ...record, duration: buffer.duration, error: played ? null : 'sound is blocked' });
    }
  }

  async decode(data) {
    const context = this.audioContext();
    if (!context) throw new Error('no WebAudio');
    return context.decodeAudioData(data);
  }

  /** Try to resume a context the browser suspended until a user gesture (asks for one). */
  async wake(context) {
    if (context.state !== 'suspended') return;
    this.onNeedsGesture();
    try {
      await Promise.race([context.resume(), sleep(200)]);
    } catch {
      /* silent */
    }
  }

  /** Play a decoded buffer; resolves when it ended (or could not play). */
  async playBuffer(buffer) {
    const context = this.audioContext();
    await this.wake(context);
    if (context.state !== 'running') return false;
    await new Promise((resolve) => {
      const source = context.createBufferSource();
      source.buffer = buffer;
      source.connect(context.destination);
      const timer = setTimeout(resolve, buffer.duration * 1000 + 2000);
      source.addEventListener('ended', () => {
        clearTimeout(timer);
        resolve();
      });
      source.start();
    });
    return true;
  }

  async chime() {
    const context = this.audioContext();
    if (!context) return;
    await this.wake(context);
    if (context.state === 'running') {
      const start = context.currentTime + 0.05;
      for (const [frequency, offset] of CHIME) {
        const oscillator = context.createOscillator();
        const gain = context.createGain();
        oscillator.type = 'sine';
        oscillator.frequency.value = frequency;
        const t = start + offset;
        gain.gain.setValueAtTime(0.0001, t);
        gain.gain.exponentialRampToValueAtTime(0.4, t + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.85);
        oscillator.connect(gain).connect(context.destination);
        oscillator.start(t);
        oscillator.stop(t + 0.9);
      }
    }
    await sleep(CHIME_MS);
  }

  /** Speak; resolves with how it went: 'end', 'error: <code>', 'timeout' or 'silent'. */
  say(text, lang, voice) {
    if (!text || !this.hasSpeech) return Promise.resolve('silent');
    return new Promise((resolve) => {
      const utterance = new SpeechSynthesisUtterance(text);
      utterance.lang = voice ? voice.lang : lang;
      if (voice) utterance.voice = voice;
      utterance.rate = this.settings.rate ?? (lang.startsWith('zh') ? RATE_ZH : RATE_EN);
      let timer = null;
      const done = (outcome) => {
        clearTimeout(timer);
        resolve(outcome);
      };
      utterance.addEventListener('end', () => done('end'));
      utterance.addEventListener('error', (event) => done(`error: ${event.error}`));
      // Some engines never report the end (or have no voice): do not stall the queue.
      timer = setTimeout(() => done('timeout'), 2500 + text.length * 300);
      window.speechSynthesis.speak(utterance);
    });
  }
}
