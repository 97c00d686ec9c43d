// Choosing the browser voice that speaks the announcements. Pure functions over the list that
// speechSynthesis.getVoices() returns (objects with `name`, `lang`, `localService`, `default`),
// so they are tested with the voice lists of real machines (tests/test_web_voice.py).
//
// Browsers label the same language differently: Windows, macOS and Android say `zh-CN` (Android
// sometimes `zh_CN`), espeak-ng through speech-dispatcher on Linux says `cmn` ("Chinese
// (Mandarin, latin as English) espeak-ng") and `cmn-LATN-PINYIN`. So Chinese is matched by
// language family, mainland Mandarin first. Cantonese (`yue`, and `zh-HK`/`zh-MO`, which every
// vendor uses for Cantonese voices) is only chosen when the branch asks for it.
//
// Recorded on Debian 12 (tests/data/voices-debian-espeak-ng.json): Chromium lists 13,362 voices,
// the Chinese ones "Chinese (Mandarin, latin as Pinyin) espeak-ng" (`cmn-LATN-PINYIN`),
// "Chinese (Mandarin, latin as English) espeak-ng" (`cmn`), two Cantonese (`yue`) and Hakka
// (`hak`), each also with 101 "+variant" voices.

/** `zh_CN` -> `zh-cn`; Android's `zh-CN-#Hans` -> `zh-cn-hans`. */
export function normaliseLang(lang) {
  return String(lang || '')
    .replace(/_/g, '-')
    .replace(/#/g, '')
    .toLowerCase()
    .split('-')
    .filter(Boolean)
    .join('-');
}

const LANG_TAG = /^[a-z]{2,3}(-[a-z0-9]{1,8})*$/;

// Chinese languages that are neither Mandarin nor Cantonese: never chosen for the announcement.
const OTHER_CHINESE = new Set(['hak', 'nan', 'wuu', 'gan', 'hsn', 'cdo', 'cpx', 'cjy', 'czh', 'mnp', 'min']);
const CANTONESE_REGIONS = new Set(['hk', 'mo']);

/**
 * How a voice's language serves a Chinese announcement: `mandarin` with a rank (0 mainland,
 * 1 generic, 2 Taiwan), `cantonese` (0 `yue`, 1 `zh-HK`), or null (not Chinese, or another
 * Chinese language such as Hakka).
 *
 * espeak-ng's Mandarin comes twice: `cmn-latn-pinyin` ("latin as Pinyin") and `cmn` ("latin as
 * English"). espeak-ng 1.51 (Debian 12) spells most characters in pinyin and the `cmn` voice
 * then reads that pinyin as English words (请 comes out as "king three"), so the pinyin one
 * ranks with the mainland voices and plain `cmn` after them.
 */
export function chineseKind(lang) {
  const tags = normaliseLang(lang).split('-');
  const [primary, ...rest] = tags;
  if (primary === 'yue' || (primary === 'zh' && rest[0] === 'yue')) return { kind: 'cantonese', rank: 0 };
  if (primary !== 'zh' && primary !== 'cmn') return null;
  if (rest.some((tag) => OTHER_CHINESE.has(tag))) return null;
  const mandarinMarked = primary === 'cmn' || rest.includes('cmn') || rest.includes('hans');
  if (!mandarinMarked && rest.some((tag) => CANTONESE_REGIONS.has(tag))) return { kind: 'cantonese', rank: 1 };
  if (rest.includes('tw') || rest.includes('hant')) return { kind: 'mandarin', rank: 2 };
  if (rest.includes('cn') || rest.includes('hans') || rest.includes('pinyin')) return { kind: 'mandarin', rank: 0 };
  return { kind: 'mandarin', rank: 1 }; // bare `zh` or `cmn`, `zh-SG`, …
}

/** Does a voice setting (`?voice=`, the branch's `announcement.voice`) ask for Cantonese? */
export function wantsCantonese(setting) {
  const value = String(setting || '').trim();
  if (!value) return false;
  if (/cantonese|粤|粵|廣東|广东/i.test(value)) return true;
  const lang = normaliseLang(value);
  return LANG_TAG.test(lang) && chineseKind(lang)?.kind === 'cantonese';
}

/** The best voice by `score` (lower is better; null excludes); local voices before network
 * ones (a hall may be offline), then the browser's order (espeak-ng lists a voice before its
 * `+variant`s). */
function best(voices, score) {
  let chosen = null;
  let chosenKey = null;
  voices.forEach((voice, index) => {
    const s = score(voice);
    if (s === null || s === undefined) return;
    const key = [s, voice.localService === false ? 1 : 0, index];
    if (chosenKey === null || compare(key, chosenKey) < 0) {
      chosen = voice;
      chosenKey = key;
    }
  });
  return chosen;
}

function compare(a, b) {
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/** The voice a setting names: the exact name (or voiceURI), else a language tag (`yue`,
 * `zh-TW`, `cmn`), else a case-insensitive part of a name. Null when nothing matches. */
export function findPreferred(voices, preferred) {
  const wanted = String(preferred || '').trim();
  if (!wanted) return null;
  const exact = voices.find((v) => v.name === wanted || v.voiceURI === wanted);
  if (exact) return exact;
  const tag = normaliseLang(wanted);
  if (LANG_TAG.test(tag)) {
    const byLang = best(voices, (v) => {
      const lang = normaliseLang(v.lang);
      if (lang === tag) return 0;
      return lang.startsWith(`${tag}-`) ? 1 : null;
    });
    if (byLang) return byLang;
  }
  const lower = wanted.toLowerCase();
  return best(voices, (v) => (String(v.name || '').toLowerCase().includes(lower) ? 0 : null));
}

/**
 * The voice for the Chinese announcement, or null when this browser has none (then the page
 * plays the server's audio, SPEC §3).
 *
 * `preferred`: a voice setting (see findPreferred); it wins when it matches a voice.
 * `cantonese`: the branch asks for Cantonese: Cantonese voices first, then Mandarin.
 * Otherwise Mandarin only: mainland (`zh-CN`, `zh-Hans`, espeak-ng's `cmn-latn-pinyin`), then
 * generic (`zh`, `cmn`), then Taiwan (`zh-TW`).
 */
export function chooseVoice(voices, { preferred = null, cantonese = false } = {}) {
  const list = Array.from(voices || []);
  const named = findPreferred(list, preferred);
  if (named) return named;
  return best(list, (voice) => {
    const kind = chineseKind(voice.lang);
    if (!kind) return null;
    if (kind.kind === 'cantonese') return cantonese ? kind.rank : null;
    return (cantonese ? 10 : 0) + kind.rank;
  });
}

/** The voice for the English announcement: American, then British, then any English. */
export function chooseEnglishVoice(voices) {
  return best(Array.from(voices || []), (voice) => {
    const [primary, region] = normaliseLang(voice.lang).split('-');
    if (primary !== 'en') return null;
    if (region === 'us') return 0;
    if (region === 'gb') return 1;
    return 2;
  });
}

/** "Chinese (Mandarin, latin as English) espeak-ng (cmn)", for the status line. */
export function describeVoice(voice) {
  if (!voice) return '';
  return `${voice.name} (${voice.lang})`;
}
