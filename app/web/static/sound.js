// The lobby speaker: a two-tone chime made with WebAudio (no audio files), then the announcement
// spoken by the browser's speech synthesis, in Chinese and then in English. Announcements queue
// up and are spoken one after the other.
//
// Browsers only make sound after a user gesture unless told otherwise: a lobby TV runs Chromium
// with --autoplay-policy=no-user-gesture-required (docs/ui.md); elsewhere the page shows a
// "tap to enable sound" button.

const CHIME = [
  [659.25, 0.0], // E5
  [523.25, 0.42], // C5
];
const CHIME_MS = 1300;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class Announcer {
  constructor({ onSpeak = () => {}, onNeedsGesture = () => {} } = {}) {
    this.onSpeak = onSpeak;
    this.onNeedsGesture = onNeedsGesture;
    this.queue = [];
    this.running = false;
    this.context = null;
    this.voices = [];
    if ('speechSynthesis' in window) {
      const load = () => {
        this.voices = window.speechSynthesis.getVoices();
      };
      load();
      window.speechSynthesis.addEventListener?.('voiceschanged', load);
    }
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
    if ('speechSynthesis' in window) {
      const silent = new SpeechSynthesisUtterance(' ');
      silent.volume = 0;
      window.speechSynthesis.speak(silent);
    }
  }

  announce(item) {
    this.queue.push(item);
    if (!this.running) this.run();
  }

  async run() {
    this.running = true;
    try {
      while (this.queue.length) {
        const item = this.queue.shift();
        await this.chime();
        this.onSpeak(item);
        await this.say(item.zh, 'zh-CN');
        await this.say(item.en, 'en-US');
        await sleep(400);
      }
    } finally {
      this.running = false;
    }
  }

  async chime() {
    const context = this.audioContext();
    if (!context) return;
    if (context.state === 'suspended') {
      this.onNeedsGesture();
      try {
        await Promise.race([context.resume(), sleep(200)]);
      } catch {
        /* silent */
      }
    }
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

  pickVoice(lang) {
    const prefix = lang.slice(0, 2).toLowerCase();
    return (
      this.voices.find((v) => v.lang === lang) ||
      this.voices.find((v) => v.lang.replace('_', '-').toLowerCase().startsWith(prefix)) ||
      null
    );
  }

  say(text, lang) {
    if (!text || !('speechSynthesis' in window)) return Promise.resolve();
    return new Promise((resolve) => {
      const utterance = new SpeechSynthesisUtterance(text);
      utterance.lang = lang;
      const voice = this.pickVoice(lang);
      if (voice) utterance.voice = voice;
      utterance.rate = lang.startsWith('zh') ? 0.9 : 0.95;
      let timer = null;
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      utterance.addEventListener('end', done);
      utterance.addEventListener('error', done);
      // Some engines never report the end (or have no voice): do not stall the queue.
      timer = setTimeout(done, 2500 + text.length * 300);
      window.speechSynthesis.speak(utterance);
    });
  }
}
