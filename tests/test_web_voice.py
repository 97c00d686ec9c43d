"""The call is heard (issue 26, the display's side): which voice speaks, and the server's audio.

- `chooseVoice` (app/web/static/voice.js), run in Chromium against the voice lists real machines
  report: Linux with speech-dispatcher and espeak-ng (recorded here: tests/data/), Windows,
  Android and macOS (as those systems name and label their voices);
- the Announcer's choice between the browser's voice and the server's audio per branch mode;
- the real display in headed Chromium under Xvfb with speech-dispatcher and espeak-ng, as on a
  Debian lobby PC: a Mandarin voice speaks;
- `?voice=` remembered like the token.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from app.web.views import STATIC_DIR
from tests.browser import BRANCH, expect, new_context, watch_console
from tests.db import ROOT

# ------------------------------------------------------------------------------------------------
# Voice lists.


def voice(name: str, lang: str, *, local: bool = True, default: bool = False) -> dict[str, Any]:
    """A SpeechSynthesisVoice as getVoices() reports it."""
    return {"name": name, "lang": lang, "voiceURI": name, "localService": local, "default": default}


def debian_espeak_ng() -> list[dict[str, Any]]:
    """The 13,362 voices Chromium lists on Debian 12 with speech-dispatcher and espeak-ng
    (recorded under Xvfb: each base voice, then its 101 `+variant`s)."""
    recorded = json.loads((ROOT / "tests" / "data" / "voices-debian-espeak-ng.json").read_text())
    voices: list[dict[str, Any]] = []
    for name, lang in recorded["voices"]:
        voices.append(voice(name, lang, default=not voices))
        stem = name.removesuffix(" espeak-ng")
        voices.extend(voice(f"{stem}+{v} espeak-ng", lang) for v in recorded["variants"])
    return voices


# espeak-ng 1.51's plain `cmn` voice reads most characters as English words (voice.js): the
# pinyin one speaks the announcement.
MANDARIN_ESPEAK = "Chinese (Mandarin, latin as Pinyin) espeak-ng"
MANDARIN_ESPEAK_LANG = "cmn-LATN-PINYIN"
CANTONESE_ESPEAK = "Chinese (Cantonese) espeak-ng"

# Chrome on Windows 11 with the Chinese (Simplified) language pack: the system's voices, then
# Chrome's network voices.
WINDOWS = [
    voice("Microsoft David - English (United States)", "en-US", default=True),
    voice("Microsoft Mark - English (United States)", "en-US"),
    voice("Microsoft Zira - English (United States)", "en-US"),
    voice("Microsoft Hazel - English (Great Britain)", "en-GB"),
    voice("Microsoft Huihui - Chinese (Simplified, PRC)", "zh-CN"),
    voice("Microsoft Kangkang - Chinese (Simplified, PRC)", "zh-CN"),
    voice("Microsoft Yaoyao - Chinese (Simplified, PRC)", "zh-CN"),
    voice("Microsoft Tracy - Chinese (Traditional, Hong Kong S.A.R.)", "zh-HK"),
    voice("Microsoft Hanhan - Chinese (Traditional, Taiwan)", "zh-TW"),
    voice("Google US English", "en-US", local=False),
    voice("Google UK English Female", "en-GB", local=False),
    voice("Google 日本語", "ja-JP", local=False),
    voice("Google 普通话（中国大陆）", "zh-CN", local=False),
    voice("Google 粤語（香港）", "zh-HK", local=False),
    voice("Google 國語（臺灣）", "zh-TW", local=False),
]
# The same PC without the Chinese language pack: only Chrome's network voice speaks Chinese.
WINDOWS_ENGLISH_ONLY = [
    v for v in WINDOWS if "Microsoft" not in v["name"] or "English" in v["name"]
]
# Edge adds its network "Online (Natural)" voices.
EDGE_NATURAL = [
    voice("Microsoft Xiaoxiao Online (Natural) - Chinese (Mainland)", "zh-CN", local=False),
    voice(
        "Microsoft HiuGaai Online (Natural) - Chinese (Cantonese Traditional)", "zh-HK", local=False
    ),
]

# Android TV boxes: a WebView reporting Java locales (underscores), and Chrome with Google's
# speech services (voice ids as names).
ANDROID_LOCALES = [
    voice("English (United States)", "en_US", default=True),
    voice("Chinese (China)", "zh_CN"),
    voice("Chinese (Taiwan)", "zh_TW"),
    voice("Cantonese (Hong Kong)", "yue_HK"),
]
ANDROID_GOOGLE = [
    voice("en-us-x-sfg-local", "en-US", default=True),
    voice("yue-hk-x-jar-local", "yue-HK"),
    voice("cmn-tw-x-ctc-local", "zh-TW"),
    voice("cmn-cn-x-ccc-network", "zh-CN", local=False),
    voice("cmn-cn-x-ccc-local", "zh-CN"),
    voice("cmn-cn-x-ssa-local", "zh-CN"),
]

# macOS (Safari and Chrome list the system's voices).
MACOS = [
    voice("Alex", "en-US"),
    voice("Daniel", "en-GB"),
    voice("Samantha", "en-US", default=True),
    voice("Kyoko", "ja-JP"),
    voice("Meijia", "zh-TW"),
    voice("Sinji", "zh-HK"),
    voice("Tingting", "zh-CN"),
]

NO_CHINESE = [
    voice("Microsoft David - English (United States)", "en-US", default=True),
    voice("Microsoft Zira - English (United States)", "en-US"),
    voice("Kyoko", "ja-JP"),
    voice("Hakka Chinese espeak-ng", "hak"),
    voice("Japanese espeak-ng", "ja"),
]


# ------------------------------------------------------------------------------------------------
# voice.js in Chromium, served from app/web/static without a server.


@pytest.fixture
async def voice_page(browser):
    page = await browser.new_page()

    async def serve(route: Any) -> None:
        path = urlsplit(route.request.url).path
        if path.startswith("/web/static/") and path.endswith(".js"):
            source = (STATIC_DIR / path.removeprefix("/web/static/")).read_text(encoding="utf-8")
            await route.fulfill(body=source, content_type="text/javascript; charset=utf-8")
        else:
            page_html = "<!doctype html><title>voices</title>"
            await route.fulfill(body=page_html, content_type="text/html")

    await page.route("http://voices.test/**", serve)
    await page.goto("http://voices.test/")
    yield page
    await page.close()


async def choose(page: Any, voices: list[dict[str, Any]], **options: Any) -> str | None:
    """chooseVoice(voices, options) in the page: the chosen voice's name, or None."""
    name: str | None = await page.evaluate(
        """async ([voices, options]) => {
            const { chooseVoice } = await import('/web/static/voice.js');
            const chosen = chooseVoice(voices, options);
            return chosen ? chosen.name : null;
        }""",
        [voices, options],
    )
    return name


async def english(page: Any, voices: list[dict[str, Any]]) -> str | None:
    name: str | None = await page.evaluate(
        """async (voices) => {
            const { chooseEnglishVoice } = await import('/web/static/voice.js');
            const chosen = chooseEnglishVoice(voices);
            return chosen ? chosen.name : null;
        }""",
        voices,
    )
    return name


async def call(page: Any, function: str, *args: Any) -> Any:
    """voice.js's `function(*args)` in the page."""
    return await page.evaluate(
        f"async (args) => (await import('/web/static/voice.js')).{function}(...args)", list(args)
    )


async def test_linux_espeak_ng_mandarin_is_labelled_cmn(voice_page):
    voices = debian_espeak_ng()
    assert len(voices) == 13_362
    # The page used to look for zh-CN or zh*: none of these 13,362 voices is labelled so.
    assert not [v for v in voices if v["lang"].lower().startswith("zh")]
    assert await choose(voice_page, voices) == MANDARIN_ESPEAK
    # Cantonese (two voices and their variants, `yue`) only when asked; Hakka (`hak`) never.
    assert await choose(voice_page, voices, cantonese=True) == CANTONESE_ESPEAK
    without_mandarin = [v for v in voices if not v["lang"].startswith("cmn")]
    assert await choose(voice_page, without_mandarin) is None
    assert await choose(voice_page, [v for v in voices if v["lang"] == "hak"]) is None
    # The "latin as English" one when it is the only Mandarin voice; a variant when named.
    no_pinyin = [v for v in voices if v["lang"] != MANDARIN_ESPEAK_LANG]
    assert await choose(voice_page, no_pinyin) == "Chinese (Mandarin, latin as English) espeak-ng"
    assert await choose(voice_page, voices, preferred="cmn") == (
        "Chinese (Mandarin, latin as English) espeak-ng"
    )
    assert (
        await choose(voice_page, voices, preferred="Chinese (Mandarin, latin as Pinyin)+Linda")
        == "Chinese (Mandarin, latin as Pinyin)+Linda espeak-ng"
    )
    assert await english(voice_page, voices) == "English (America) espeak-ng"


async def test_windows_huihui(voice_page):
    assert await choose(voice_page, WINDOWS) == "Microsoft Huihui - Chinese (Simplified, PRC)"
    assert await choose(voice_page, WINDOWS, preferred="yaoyao") == (
        "Microsoft Yaoyao - Chinese (Simplified, PRC)"
    )
    assert await choose(
        voice_page, WINDOWS, preferred="Microsoft Kangkang - Chinese (Simplified, PRC)"
    ) == ("Microsoft Kangkang - Chinese (Simplified, PRC)")
    assert await choose(voice_page, WINDOWS, cantonese=True) == (
        "Microsoft Tracy - Chinese (Traditional, Hong Kong S.A.R.)"
    )
    # Without the language pack: Chrome's network voice, the only Mandarin one.
    assert await choose(voice_page, WINDOWS_ENGLISH_ONLY) == "Google 普通话（中国大陆）"
    # A local voice before a network one, wherever the browser lists it.
    assert await choose(voice_page, EDGE_NATURAL + WINDOWS) == (
        "Microsoft Huihui - Chinese (Simplified, PRC)"
    )
    assert await choose(voice_page, EDGE_NATURAL) == (
        "Microsoft Xiaoxiao Online (Natural) - Chinese (Mainland)"
    )
    assert await english(voice_page, WINDOWS) == "Microsoft David - English (United States)"


async def test_android_underscores_and_voice_ids(voice_page):
    assert await choose(voice_page, ANDROID_LOCALES) == "Chinese (China)"
    assert await choose(voice_page, ANDROID_LOCALES, cantonese=True) == "Cantonese (Hong Kong)"
    only_taiwan = [v for v in ANDROID_LOCALES if v["lang"] != "zh_CN"]
    assert await choose(voice_page, only_taiwan) == "Chinese (Taiwan)"
    assert await choose(voice_page, ANDROID_GOOGLE) == "cmn-cn-x-ccc-local"
    assert await choose(voice_page, ANDROID_GOOGLE, preferred="ssa") == "cmn-cn-x-ssa-local"
    assert await choose(voice_page, ANDROID_GOOGLE, cantonese=True) == "yue-hk-x-jar-local"
    assert await english(voice_page, ANDROID_LOCALES) == "English (United States)"


async def test_macos_tingting(voice_page):
    assert await choose(voice_page, MACOS) == "Tingting"
    assert await choose(voice_page, MACOS, cantonese=True) == "Sinji"
    # Without Tingting: Taiwan's Mandarin (Meijia), never Hong Kong's Cantonese (Sinji).
    assert await choose(voice_page, [v for v in MACOS if v["name"] != "Tingting"]) == "Meijia"
    assert await english(voice_page, MACOS) == "Alex"


async def test_no_chinese_voice(voice_page):
    assert await choose(voice_page, NO_CHINESE) is None
    assert await choose(voice_page, []) is None
    assert await choose(voice_page, NO_CHINESE, cantonese=True) is None
    # Headless Chromium lists no voices at all.
    assert await voice_page.evaluate("speechSynthesis.getVoices().length") == 0
    # A preferred voice that is not there changes nothing.
    assert await choose(voice_page, NO_CHINESE, preferred="Tingting") is None
    assert await choose(voice_page, MACOS, preferred="Huihui") == "Tingting"


async def test_preferred_voice_wins(voice_page):
    # By exact name, then by a language tag, then by a part of the name (any case).
    assert await choose(voice_page, MACOS, preferred="Meijia") == "Meijia"
    assert await choose(voice_page, MACOS, preferred="zh-TW") == "Meijia"
    assert await choose(voice_page, MACOS, preferred="zh_tw") == "Meijia"
    assert await choose(voice_page, MACOS, preferred="MEIJ") == "Meijia"
    # Even a voice of another language, when that is what the screen asks for.
    assert await choose(voice_page, MACOS, preferred="Samantha") == "Samantha"
    espeak = debian_espeak_ng()
    assert await choose(voice_page, espeak, preferred="latin as english") == (
        "Chinese (Mandarin, latin as English) espeak-ng"
    )
    assert await choose(voice_page, espeak, preferred="yue") == CANTONESE_ESPEAK


async def test_cantonese_only_when_asked(voice_page):
    cantonese_only = [
        voice("Sinji", "zh-HK"),
        voice("Microsoft Tracy - Chinese (Traditional, Hong Kong S.A.R.)", "zh-HK"),
        voice("yue-hk-x-jar-local", "yue-HK"),
        voice("Cantonese (Hong Kong)", "yue_HK"),
        voice("Chinese (Cantonese) espeak-ng", "yue"),
    ]
    assert await choose(voice_page, cantonese_only) is None
    assert await choose(voice_page, cantonese_only, cantonese=True) == "yue-hk-x-jar-local"
    # Asked for Cantonese where there is none: Mandarin rather than silence.
    assert await choose(voice_page, MACOS[:5], cantonese=True) == "Meijia"
    # How a branch (announcement.voice) or a screen (?voice=) asks for it.
    for asks in ["yue", "yue-HK", "zh-HK", "zh_HK", "Cantonese", "粤语", "粵語"]:
        assert await call(voice_page, "wantsCantonese", asks), asks
    for other in [None, "", "zh-CN", "cmn", "Tingting", "Sinji", "zh-Hans-HK"]:
        assert not await call(voice_page, "wantsCantonese", other), other


async def test_language_tags_normalised(voice_page):
    cases = {
        "zh_CN": "zh-cn",
        "zh-CN-#Hans": "zh-cn-hans",
        "cmn-LATN-PINYIN": "cmn-latn-pinyin",
        "yue_HK": "yue-hk",
        "": "",
    }
    for lang, expected in cases.items():
        assert await call(voice_page, "normaliseLang", lang) == expected, lang
    kinds = {
        "zh-CN": ["mandarin", 0],
        "cmn-LATN-PINYIN": ["mandarin", 0],
        "zh-Hans-CN": ["mandarin", 0],
        "zh": ["mandarin", 1],
        "cmn": ["mandarin", 1],
        "zh-TW": ["mandarin", 2],
        "zh-Hant": ["mandarin", 2],
        "zh-HK": ["cantonese", 1],
        "yue": ["cantonese", 0],
        "hak": None,
        "zh-min-nan": None,
        "ja-JP": None,
    }
    for lang, kind in kinds.items():
        got = await call(voice_page, "chineseKind", lang)
        assert (got and [got["kind"], got["rank"]]) == kind, lang


# ------------------------------------------------------------------------------------------------
# The Announcer (sound.js): the browser's voice or the server's audio, per the branch's mode.


async def plans(page: Any, voices: list[dict[str, Any]], announcement: dict[str, Any], **kw):
    """What an Announcer with these voices and settings says it will use, with and without
    server audio on the announcement."""
    result: dict[str, Any] = await page.evaluate(
        """async ([voices, announcement, voiceSetting]) => {
            const { Announcer } = await import('/web/static/sound.js');
            const announcer = new Announcer({ fetchAudio: async () => null, voiceSetting });
            announcer.voices = voices;
            announcer.configure(announcement);
            return {
                status: announcer.status(),
                withAudio: announcer.plan({ audio: '/api/v1/branches/demo/announcements/x.wav' }),
                withoutAudio: announcer.plan({ audio: null }),
                settings: announcer.settings,
            };
        }""",
        [voices, announcement, kw.get("voice_setting")],
    )
    return result


async def test_modes_choose_voice_or_server_audio(voice_page):
    auto = {"mode": "auto"}
    # auto: a Chinese voice on this machine speaks; without one, the server's audio plays.
    linux = await plans(voice_page, debian_espeak_ng(), auto)
    assert linux["status"]["source"] == "browser"
    assert linux["status"]["voice"] == MANDARIN_ESPEAK
    assert linux["status"]["lang"] == MANDARIN_ESPEAK_LANG
    assert linux["withAudio"] == "browser"
    headless = await plans(voice_page, [], auto)
    assert headless["status"]["source"] == "server"
    assert (headless["withAudio"], headless["withoutAudio"]) == ("server", "browser")
    assert (await plans(voice_page, NO_CHINESE, auto))["withAudio"] == "server"
    # A network voice (no language pack on Windows) is not trusted before the server's audio,
    # unless the screen or the branch names it.
    windows = await plans(voice_page, WINDOWS_ENGLISH_ONLY, auto)
    assert (windows["status"]["source"], windows["withAudio"]) == ("server", "server")
    named = await plans(voice_page, WINDOWS_ENGLISH_ONLY, {**auto, "voice": "Google 普通话"})
    assert (named["status"]["source"], named["withAudio"]) == ("browser", "browser")
    # browser: never the server's audio, even without a Chinese voice (the default one speaks).
    browser = await plans(voice_page, NO_CHINESE, {"mode": "browser"})
    assert (browser["status"]["source"], browser["withAudio"]) == ("default", "browser")
    # server: always the server's audio, even with a Chinese voice.
    server = await plans(voice_page, MACOS, {"mode": "server"})
    assert (server["status"]["source"], server["withAudio"]) == ("server", "server")
    assert server["withoutAudio"] == "browser"
    # The screen's ?voice= before the branch's default; a name that is not there is reported.
    both = await plans(voice_page, MACOS, {**auto, "voice": "Meijia"}, voice_setting="Sinji")
    assert (both["status"]["voice"], both["status"]["found"]) == ("Sinji", True)
    missing = await plans(voice_page, MACOS, {**auto, "voice": "Huihui"})
    assert missing["status"]["voice"] == "Tingting"
    assert (missing["status"]["preferred"], missing["status"]["found"]) == ("Huihui", False)
    # The branch asks for Cantonese by its voice setting.
    cantonese = await plans(voice_page, MACOS, {**auto, "voice": "yue"})
    assert cantonese["status"]["voice"] == "Sinji"


async def test_settings_defaults_and_bounds(voice_page):
    async def settings(announcement: Any) -> dict[str, Any]:
        got: dict[str, Any] = await voice_page.evaluate(
            """async (a) => (await import('/web/static/sound.js')).announcementSettings(a)""",
            announcement,
        )
        return got

    default = {"mode": "auto", "repeat": 1, "rate": None, "voice": None}
    assert await settings(None) == default
    assert await settings({"zh": "请{number}号", "en": "Ticket {number}"}) == default
    assert await settings({"mode": "server", "repeat": 2, "rate": 0.8, "voice": " Tingting "}) == {
        "mode": "server",
        "repeat": 2,
        "rate": 0.8,
        "voice": "Tingting",
    }
    assert await settings({"mode": "loud", "repeat": 9, "rate": 7, "voice": ""}) == {
        "mode": "auto",
        "repeat": 3,
        "rate": 2,
        "voice": None,
    }
    assert (await settings({"repeat": 0, "rate": -1}))["repeat"] == 1


# ------------------------------------------------------------------------------------------------
# The display in a real browser.


def audio_requests(page: Any) -> list[str]:
    """The announcement audio the page asks the server for, as it happens."""
    seen: list[str] = []

    def on_request(request: Any) -> None:
        if "/announcements/" in request.url:
            seen.append(request.url)

    page.on("request", on_request)
    return seen


async def played(page: Any) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = await page.evaluate("window.hallq.played")
    return records


async def call_next(hall: Any, counter: str = "1", who: str = "s1") -> dict[str, Any]:
    """Open the counter if needed and call the next ticket."""
    state = await hall.api("GET", f"/branches/{BRANCH}/counters/{counter}", who)
    if state.get("state") != "open":
        await hall.counter(counter, "open", who=who)
    called: dict[str, Any] = await hall.counter(counter, "next", who=who)
    return called


async def test_headed_chromium_with_espeak_ng_speaks_mandarin(hall, speech_browser):
    """A Debian lobby PC as docs/ui.md sets it up: Chromium headed, --enable-speech-dispatcher,
    speech-dispatcher with espeak-ng. The page finds the Mandarin voice (`cmn-LATN-PINYIN`; not
    labelled zh-*) and speaks with it."""
    errors: list[str] = []
    context = await speech_browser.new_context(
        viewport={"width": 1920, "height": 1080}, locale="zh-CN", timezone_id="Asia/Shanghai"
    )
    display = await context.new_page()
    watch_console(display, errors)
    fetched = audio_requests(display)
    await display.goto(hall.page_url(f"/display/{BRANCH}", "display"))
    body = display.locator("body")
    await expect(body).to_have_attribute("data-connection", "live")
    # The voices arrive a moment after the page (voiceschanged); the status line follows.
    await expect(body).to_have_attribute("data-voice-source", "browser")
    await expect(body).to_have_attribute("data-voice-lang", MANDARIN_ESPEAK_LANG)
    await expect(body).to_have_attribute("data-voice-name", MANDARIN_ESPEAK)
    status = display.locator("#voice-status")
    await expect(status).to_contain_text(f"{MANDARIN_ESPEAK} · {MANDARIN_ESPEAK_LANG}")
    voices = await display.evaluate(
        "speechSynthesis.getVoices().map(v => ({name: v.name, lang: v.lang}))"
    )
    chinese = sorted(
        {(v["name"], v["lang"]) for v in voices if "+" not in v["name"] and "Chinese" in v["name"]}
    )
    print(f"\nChromium under Xvfb lists {len(voices)} voices; Chinese ones: {chinese}")
    assert (MANDARIN_ESPEAK, MANDARIN_ESPEAK_LANG) in chinese

    await hall.issue("a")
    await call_next(hall)
    await expect(display.locator("#now-number")).to_have_text("A001")
    await expect(body).to_have_attribute("data-played-count", "1")
    [record] = await played(display)
    assert record["via"] == "browser"
    assert (record["voice"], record["lang"]) == (MANDARIN_ESPEAK, MANDARIN_ESPEAK_LANG)
    assert record["spoken"] == "end", record  # the engine spoke it through to the end
    assert fetched == []  # a Chinese voice here: the server's audio is not needed
    assert errors == []
    await context.close()


async def test_voice_setting_is_remembered_and_cleared(hall, browser):
    """`?voice=` is kept like the token (and leaves the address bar); `?voice=` forgets it."""
    context = await browser.new_context(viewport={"width": 1920, "height": 1080})
    display = await context.new_page()
    await display.goto(hall.page_url(f"/display/{BRANCH}", "display") + "&voice=Tingting")
    body = display.locator("body")
    await expect(body).to_have_attribute("data-connection", "live")
    assert "voice=" not in display.url and "token=" not in display.url
    key = f"hallq.voice.display.{BRANCH}"
    assert await display.evaluate(f"localStorage.getItem('{key}')") == "Tingting"
    # Headless Chromium has no voices: the status line says so, and what was asked for.
    await expect(display.locator("#voice-status")).to_contain_text("Tingting")
    await expect(display.locator("#voice-status")).to_contain_text("not found")
    assert (await display.evaluate("window.hallq.voice"))["preferred"] == "Tingting"

    await display.goto(f"{hall.url}/display/{BRANCH}")
    await expect(body).to_have_attribute("data-connection", "live")
    assert (await display.evaluate("window.hallq.voice"))["preferred"] == "Tingting"

    await display.goto(f"{hall.url}/display/{BRANCH}?voice=")
    await expect(body).to_have_attribute("data-connection", "live")
    assert "voice=" not in display.url
    assert await display.evaluate(f"localStorage.getItem('{key}')") is None
    assert (await display.evaluate("window.hallq.voice"))["preferred"] is None
    await expect(display.locator("#voice-status")).not_to_contain_text("Tingting")
    await context.close()


async def open_display(browser: Any, hall: Any, errors: list[str]) -> Any:
    context = await new_context(browser, 1920, 1080)
    display = await context.new_page()
    watch_console(display, errors)
    await display.goto(hall.page_url(f"/display/{BRANCH}", "display"))
    await expect(display.locator("body")).to_have_attribute("data-connection", "live")
    return display


async def test_headless_auto_plays_the_server_audio_without_delaying_the_call(hall, browser):
    """Headless Chromium has no voice at all: in `auto` (the default) the display plays the
    audio the server rendered. The call is on screen while the audio is still on its way."""
    errors: list[str] = []
    display = await open_display(browser, hall, errors)
    body = display.locator("body")
    await expect(body).to_have_attribute("data-voice-source", "server")
    await expect(display.locator("#voice-status")).to_contain_text("Server audio")
    fetched = audio_requests(display)
    # The server's audio is held back for 3 s on its way to the page.
    release = asyncio.Event()

    async def slow_audio(route: Any) -> None:
        await release.wait()
        await route.continue_()

    await display.route("**/announcements/**", slow_audio)
    await hall.issue("a")
    await call_next(hall)
    await expect(display.locator("#now-number")).to_have_text("A001", timeout=3000)
    await expect(display.locator("#now-text")).to_contain_text("请A001号到1号窗口办理")
    [announced] = await display.evaluate("window.hallq.announced")
    audio = announced["audio"]
    assert audio and audio.startswith(f"/api/v1/branches/{BRANCH}/announcements/A001/1/"), audio
    assert audio.endswith(".wav")
    assert await played(display) == []
    await asyncio.sleep(1)
    release.set()

    await expect(body).to_have_attribute("data-played-count", "1")
    [record] = await played(display)
    assert record["via"] == "server" and record["error"] is None, record
    assert record["url"] == audio and fetched == [f"{hall.url}{audio}"]
    # Chinese, a pause, English: a few seconds of audio.
    assert 2 < record["duration"] < 15, record
    assert record["fetchMs"] >= 1000  # it waited for the audio, the screen did not
    await expect(body).to_have_attribute("data-last-audio", audio)
    assert float(await body.get_attribute("data-last-audio-duration")) == record["duration"]
    assert errors == []


async def test_server_mode_repeat_two_and_a_recall(hall, browser):
    await hall.set_announcement(mode="server", repeat=2)
    errors: list[str] = []
    display = await open_display(browser, hall, errors)
    body = display.locator("body")
    await expect(body).to_have_attribute("data-voice-mode", "server")
    fetched = audio_requests(display)
    await hall.issue("a")
    await call_next(hall)
    await expect(body).to_have_attribute("data-played-count", "2", timeout=40_000)
    first, second = await played(display)
    assert first["via"] == second["via"] == "server"
    assert first["url"] == second["url"] and first["seq"] == second["seq"]
    assert first["duration"] == second["duration"] > 2
    assert len(fetched) == 1  # fetched once, played twice

    # A recall is announced again, twice, with the same audio.
    await hall.counter("1", "recall", who="s1")
    await expect(body).to_have_attribute("data-played-count", "4", timeout=40_000)
    records = await played(display)
    assert records[2]["seq"] == records[3]["seq"] > first["seq"]
    assert records[2]["url"] == first["url"] and records[3]["error"] is None
    assert errors == []


async def test_browser_mode_never_fetches_audio(hall, browser):
    await hall.set_announcement(mode="browser")
    errors: list[str] = []
    display = await open_display(browser, hall, errors)
    body = display.locator("body")
    # No voice in headless Chromium: the browser's default voice it is, and the line says so.
    await expect(body).to_have_attribute("data-voice-source", "default")
    await expect(display.locator("#voice-status")).to_contain_text("no Chinese voice found")
    fetched = audio_requests(display)
    await hall.issue("a")
    await call_next(hall)
    await expect(display.locator("#now-number")).to_have_text("A001")
    await expect(body).to_have_attribute("data-played-count", "1", timeout=20_000)
    [record] = await played(display)
    assert record["via"] == "browser" and record["url"] is None
    [announced] = await display.evaluate("window.hallq.announced")
    assert announced["audio"] is None  # SPEC §3: no audio in browser mode
    assert fetched == []
    assert errors == []


async def test_audio_that_cannot_be_had_falls_back_to_a_browser_voice(hall, browser):
    """A server without espeak-ng answers 503: the call is still said, by a browser voice."""
    await hall.set_announcement(mode="server")
    errors: list[str] = []
    display = await open_display(browser, hall, errors)
    body = display.locator("body")

    async def engine_missing(route: Any) -> None:
        await route.fulfill(status=503, content_type="application/problem+json", body="{}")

    await display.route("**/announcements/**", engine_missing)
    await hall.issue("a")
    await call_next(hall)
    await expect(body).to_have_attribute("data-played-count", "2", timeout=20_000)
    failed, said = await played(display)
    assert failed["via"] == "server" and failed["error"] == "503 Service Unavailable", failed
    assert said["via"] == "browser" and said["seq"] == failed["seq"]
    await expect(display.locator("#now-number")).to_have_text("A001")
    assert errors == []
