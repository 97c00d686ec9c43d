"""Announcements as audio (issue 26, SPEC §3): the branch's announcement settings, the
`announcement.audio` of calls, and the audio route, with the real espeak-ng
(docs/announcements.md)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import statistics
import sys
import time
import wave
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect

from app.announcements.engine import AudioCache, SpeechEngine, SpeechUnavailable, join_wav
from app.announcements.speech import (
    Speech,
    chinese_runs,
    number_en,
    number_zh,
    set_apart,
    spoken,
)
from app.core.clock import ManualClock
from app.core.settings import Settings
from app.main import create_app
from tests.helpers import (
    ADMIN,
    assert_problem,
    bearer,
    issue,
    make_token,
    new_token,
    ok,
    setup_branch,
)
from tests.servers import running_servers

B = "/api/v1/branches/hz01"
BRANCH = {"name": "杭州01营业厅", "timezone": "Asia/Shanghai"}
LONG_NAME = "综合业务与缴费充值服务中心贵宾接待室"


# -- helpers --------------------------------------------------------------------------------------


async def put_branch(client: httpx.AsyncClient, **announcement: Any) -> dict[str, Any]:
    body = {**BRANCH, "announcement": announcement}
    response = await client.put(B, json=body, headers=ADMIN)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


async def call(client: httpx.AsyncClient, counter: str = "1", action: str = "next") -> Any:
    """Press `action` at `counter`; the announcement of the call (or recall) it made."""
    result = await ok(await client.post(f"{B}/counters/{counter}/{action}", headers=ADMIN))
    detail = await ok(await client.get(f"/api/v1/tickets/{result['ticket']['id']}", headers=ADMIN))
    kind = "ticket.called" if action == "next" else "ticket.recalled"
    return [h["data"] for h in detail["history"] if h["type"] == kind][-1]["announcement"]


async def hall(client: httpx.AsyncClient, tickets: int = 1, **announcement: Any) -> None:
    """Branch hz01 (with `announcement` settings), its counters 1, 2 and 9, the long-named
    counter "long", `tickets` waiting tickets of type a, and counters 1 and "long" open."""
    counters = {
        "1": {"name": "1", "services": ["a"]},
        "long": {"name": LONG_NAME, "services": ["a"]},
    }
    await setup_branch(client, branch={**BRANCH, "announcement": announcement}, counters=counters)
    for _ in range(tickets):
        await issue(client)
    for counter in counters:
        await ok(await client.post(f"{B}/counters/{counter}/open", headers=ADMIN))


def parse_wav(content: bytes) -> tuple[wave._wave_params, float]:
    with wave.open(io.BytesIO(content)) as reader:
        params = reader.getparams()
        frames = reader.readframes(params.nframes)
    # The header is right: it counts exactly the frames the file holds.
    assert len(frames) == params.nframes * params.sampwidth * params.nchannels
    return params, params.nframes / params.framerate


async def fetch_audio(
    client: httpx.AsyncClient, path: str, headers: Any = ADMIN
) -> tuple[httpx.Response, float]:
    response = await client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    _, seconds = parse_wav(response.content)
    return response, seconds


# -- the branch's settings ----------------------------------------------------------------------


async def test_announcement_settings_default_and_round_trip(client):
    plain = await put_branch(client)
    assert plain["announcement"] == {
        "zh": None,
        "en": None,
        "mode": "auto",
        "repeat": 1,
        "rate": 1.0,
        "voice": None,
    }
    chosen = {"mode": "server", "repeat": 3, "rate": 0.8, "voice": " Microsoft Huihui "}
    changed = await put_branch(client, **chosen)
    assert changed["announcement"] == {
        "zh": None,
        "en": None,
        **chosen,
        "voice": "Microsoft Huihui",
    }
    read = await ok(await client.get(B, headers=await make_token(client, "display", "hz01")))
    assert read["announcement"] == changed["announcement"]
    # PUT replaces the whole object: left out, each setting is back to its default.
    assert (await put_branch(client, mode="browser"))["announcement"]["repeat"] == 1
    # The rate is kept to two decimals (it is part of the audio's version).
    assert (await put_branch(client, rate=1.23456))["announcement"]["rate"] == 1.23


@pytest.mark.parametrize(
    ("announcement", "field"),
    [
        ({"repeat": 0}, "repeat"),
        ({"repeat": 4}, "repeat"),
        ({"repeat": "twice"}, "repeat"),
        ({"mode": "loud"}, "mode"),
        ({"mode": None}, "mode"),
        ({"rate": 0.4}, "rate"),
        ({"rate": 2.5}, "rate"),
        ({"voice": ""}, "voice"),
        ({"voice": "x" * 101}, "voice"),
        ({"speaker": "on"}, "speaker"),
    ],
)
async def test_bad_announcement_settings_are_a_422_naming_the_setting(client, announcement, field):
    response = await client.put(B, json={**BRANCH, "announcement": announcement}, headers=ADMIN)
    problem = assert_problem(response, 422)
    assert ["body", "announcement", field] in [e["loc"][:3] for e in problem["errors"]], problem


# -- announcement.audio in calls ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["server", "auto"])
async def test_a_call_carries_audio_that_is_valid_wav_of_plausible_length(client, mode):
    await hall(client, mode=mode)
    announced = await call(client)
    assert announced["zh"] == "请A001号到1号窗口办理"
    assert announced["audio"].startswith(f"{B}/announcements/A001/1/")
    assert announced["audio"].endswith(".wav")
    response, seconds = await fetch_audio(
        client, announced["audio"], await make_token(client, "display", "hz01")
    )
    params, _ = parse_wav(response.content)
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 22050)
    # Chinese, a pause, English: a few seconds, not a click and not a minute.
    assert 3.0 < seconds < 20.0, seconds
    assert "immutable" in response.headers["cache-control"]
    assert response.headers["etag"] == f'"{announced["audio"].rsplit("/", 1)[1][:-4]}"'


async def test_browser_mode_calls_carry_no_audio(client):
    await hall(client, tickets=2, mode="browser")
    announced = await call(client)
    assert announced["audio"] is None and announced["zh"] == "请A001号到1号窗口办理"
    assert (await call(client, action="recall"))["audio"] is None
    view = await ok(await client.get(f"{B}/queue", headers=ADMIN))
    assert [c["announcement"]["audio"] for c in view["recent_calls"]] == [None, None]
    # Switched to server audio, the next call has it.
    await put_branch(client, mode="server")
    assert (await call(client))["audio"] is not None


async def test_a_recall_is_announced_with_the_same_audio(client):
    await hall(client)
    called = await call(client)
    recalled = await call(client, action="recall")
    assert recalled == called
    first, _ = await fetch_audio(client, called["audio"])
    again, _ = await fetch_audio(client, recalled["audio"])
    assert again.content == first.content


async def test_longer_words_make_longer_audio(client):
    await hall(client, tickets=2)
    _, short = await fetch_audio(client, (await call(client, "1"))["audio"])
    _, long = await fetch_audio(client, (await call(client, "long"))["audio"])
    assert long > short + 1.0, (short, long)
    # A branch's own, longer wording is spoken too.
    wordy = "请{number}号顾客带好身份证件和银行卡到{place}办理业务，谢谢合作"
    await put_branch(client, zh=wordy)
    recalled = await call(client, "1", action="recall")
    assert recalled["zh"].startswith("请A001号顾客带好身份证件")
    _, longer = await fetch_audio(client, recalled["audio"])
    assert longer > short + 1.0, (short, longer)


async def test_a_slower_rate_makes_longer_audio_under_a_new_path(client):
    await hall(client)
    normal = await call(client)
    _, normal_s = await fetch_audio(client, normal["audio"])
    await put_branch(client, rate=0.6)
    slow = await call(client, action="recall")
    assert slow["audio"] != normal["audio"]
    _, slow_s = await fetch_audio(client, slow["audio"])
    assert slow_s > normal_s * 1.3, (normal_s, slow_s)


# -- who may fetch it -----------------------------------------------------------------------------


async def test_a_display_token_of_the_branch_may_fetch_it_another_may_not(client):
    await hall(client)
    await setup_branch(client, "sh02", counters={})
    path = (await call(client))["audio"]
    await fetch_audio(client, path, await make_token(client, "display", "hz01"))
    await fetch_audio(client, path, await make_token(client, "kiosk", "hz01"))
    other = await make_token(client, "display", "sh02")
    assert_problem(await client.get(path, headers=other), 403, contains="another branch")
    assert_problem(await client.get(path, headers=await make_token(client, "monitor")), 403)
    assert_problem(await client.get(path), 401)


# -- bad paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/A001/nope/{v}.wav", 404, "counter nope"),
        ("/Z001/1/{v}.wav", 404, "prefix of ticket Z001"),
        ("/a001/1/{v}.wav", 422, "number"),
        ("/A01/1/{v}.wav", 422, "number"),
        ("/A0000001/1/{v}.wav", 422, "number"),
        ("/请A001/1/{v}.wav", 422, "number"),
        ("/A001/1/NOTHEX000000.wav", 422, "version"),
        ("/A001/1/{v}0.wav", 422, "version"),
        ("/A001/1/{v}.mp3", 404, "no such resource"),
        ("/A001/1.wav", 404, "no such resource"),
    ],
)
async def test_bad_audio_paths_are_problems(client, path, status, says):
    await hall(client)
    version = (await call(client))["audio"].rsplit("/", 1)[1][:-4]
    response = await client.get(f"{B}/announcements" + path.format(v=version), headers=ADMIN)
    assert_problem(response, status, contains=says)


async def test_an_unknown_branch_is_a_404(client):
    response = await client.get(
        "/api/v1/branches/nowhere/announcements/A001/1/0123456789ab.wav", headers=ADMIN
    )
    assert_problem(response, 404, contains="branch nowhere")


async def test_changed_words_redirect_to_the_current_audio(client):
    """The words changed between the call and the fetch (or the version is made up): the
    current audio of the same call, never a text of the caller's."""
    await hall(client)
    old = (await call(client))["audio"]
    await put_branch(client, zh="{number}号请到{place}")
    moved = await client.get(old, headers=ADMIN)
    assert moved.status_code == 307 and moved.headers["cache-control"] == "no-store"
    current = moved.headers["location"]
    assert current != old and current.rsplit("/", 1)[0] == old.rsplit("/", 1)[0]
    assert (await call(client, action="recall"))["audio"] == current
    await fetch_audio(client, current)
    made_up = old.rsplit("/", 1)[0] + "/0123456789ab.wav"
    assert (await client.get(made_up, headers=ADMIN)).headers["location"] == current


async def test_a_client_with_the_audio_gets_a_304(client):
    await hall(client)
    path = (await call(client))["audio"]
    response, _ = await fetch_audio(client, path)
    etag = response.headers["etag"]
    again = await client.get(path, headers={**ADMIN, "If-None-Match": f"W/{etag}"})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    other = await client.get(path, headers={**ADMIN, "If-None-Match": '"0123456789ab"'})
    assert other.status_code == 200


# -- the engine -----------------------------------------------------------------------------------


async def test_screens_asking_at_once_share_one_render_and_then_the_cache(app, client):
    await hall(client)
    path = (await call(client))["audio"]
    engine: SpeechEngine = app.state.speech
    before = engine.renders
    responses = await asyncio.gather(*(client.get(path, headers=ADMIN) for _ in range(6)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert engine.renders == before + 1
    await fetch_audio(client, path)
    assert engine.renders == before + 1  # from the cache


@pytest.fixture
async def engineless_app(settings: Settings, clock: ManualClock):
    application = create_app(
        settings.model_copy(update={"speech_engine": "/nonexistent/espeak-ng"}), clock
    )
    async with application.router.lifespan_context(application):
        yield application


async def test_without_the_engine_the_audio_is_a_503_logged_once(engineless_app: FastAPI, caplog):
    transport = httpx.ASGITransport(app=engineless_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hallq.test") as client:
        await hall(client, tickets=2)
        paths = [(await call(client))["audio"], (await call(client))["audio"]]
        with caplog.at_level(logging.ERROR, logger="hallq.announcements"):
            for path in paths:
                assert_problem(await client.get(path, headers=ADMIN), 503, contains="not installed")
    told = [r for r in caplog.records if "not installed" in r.getMessage()]
    assert len(told) == 1, told


def _fake_engine(tmp_path: Path, script: str) -> str:
    command = tmp_path / "fake-espeak-ng"
    command.write_text("#!/bin/sh\n" + script + "\n")
    command.chmod(0o755)
    return str(command)


async def test_an_engine_that_hangs_is_stopped_and_answers_503(tmp_path):
    engine = SpeechEngine(_fake_engine(tmp_path, "exec sleep 30"), timeout_s=0.3)
    started = asyncio.get_running_loop().time()
    with pytest.raises(SpeechUnavailable) as failed:
        await engine.wav(Speech("请", "please", 1.0))
    assert failed.value.status == 503 and "too long" in failed.value.detail
    assert asyncio.get_running_loop().time() - started < 3


async def test_an_engine_that_fails_answers_503(tmp_path):
    engine = SpeechEngine(_fake_engine(tmp_path, "echo broken >&2; exit 3"))
    with pytest.raises(SpeechUnavailable) as failed:
        await engine.wav(Speech("请", "please", 1.0))
    assert failed.value.slug == "speech-engine-failed"
    garbage = SpeechEngine(_fake_engine(tmp_path, "cat >/dev/null; echo not-a-wav"))
    with pytest.raises(SpeechUnavailable):
        await garbage.wav(Speech("请", "please", 1.0))


# An engine that says each character as one frame, and writes down how it was asked.
RECORDING_ENGINE = """#!{python}
import sys, wave
text = sys.stdin.buffer.read().decode().strip()
voice, wpm = sys.argv[sys.argv.index("-v") + 1], sys.argv[sys.argv.index("-s") + 1]
with open({log!r}, "a") as log:
    log.write(f"{{voice}} {{wpm}} {{text}}\\n")
with wave.open(sys.stdout.buffer, "wb") as out:
    out.setnchannels(1); out.setsampwidth(2); out.setframerate(1000)
    out.writeframes(b"\\1\\0" * len(text))
"""


async def test_the_engine_says_chinese_in_mandarin_and_english_in_english(tmp_path):
    log = tmp_path / "said.log"
    command = tmp_path / "recording-espeak-ng"
    command.write_text(RECORDING_ENGINE.format(python=sys.executable, log=str(log)))
    command.chmod(0o755)
    engine = SpeechEngine(str(command))
    speech = Speech("请A零零一号到VIP室办理", "Ticket A0 0 1, please go to VIP室", 1.5)
    params, _ = parse_wav(await engine.wav(speech))
    said = sorted(log.read_text().splitlines())
    assert said == [
        "cmn-latn-pinyin 262 室",
        "cmn-latn-pinyin 262 请A零零一号到VIP室办理",
        "en-us 262 Ticket A0 0 1, please go to VIP",
    ]
    # The Chinese, half a second of silence, the English runs one after the other.
    assert params.nframes == len(speech.zh) + 500 + len("Ticket A0 0 1, please go to VIP") + 1


def _wav(frames: bytes, framerate: int = 22050) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(framerate)
        writer.writeframes(frames)
    return out.getvalue()


def test_join_wav_puts_a_pause_between_the_parts_and_writes_the_right_header():
    zh, en = b"\x01\x00" * 100, b"\x02\x00" * 50
    joined = join_wav([_wav(zh), _wav(en)], pause_s=0.01)
    params, _ = parse_wav(joined)
    pause = round(22050 * 0.01)
    assert params.nframes == 100 + pause + 50
    with wave.open(io.BytesIO(joined)) as reader:
        assert reader.readframes(params.nframes) == zh + b"\0\0" * pause + en
    with pytest.raises(ValueError, match="differ"):
        join_wav([_wav(zh), _wav(en, framerate=16000)])


def test_the_audio_cache_keeps_the_recently_used_within_its_bytes():
    cache = AudioCache(max_bytes=250)
    a, b, c = (Speech(name, name, 1.0) for name in "abc")
    cache.put(a, b"a" * 100)
    cache.put(b, b"b" * 100)
    assert cache.get(a) is not None  # a is now the most recently used
    cache.put(c, b"c" * 100)
    assert cache.get(b) is None and cache.get(a) is not None and cache.get(c) is not None
    assert cache.size == 200 and len(cache) == 2
    cache.put(Speech("huge", "huge", 1.0), b"x" * 251)  # larger than the whole cache: not kept
    assert len(cache) == 2


def test_numbers_and_names_are_said_letter_by_letter_and_digit_by_digit():
    assert number_zh("A001") == "A零零一"
    assert number_zh("AB1203") == "A B一二零三"
    assert number_en("A001") == "A0 0 1"
    assert set_apart("A3号窗口") == "A 3号窗口"
    speech = spoken("V012", "A3", zh_template=None, en_template=None, rate=1.0)
    assert speech == Speech(
        zh="请V零一二号到A 3号窗口办理", en="Ticket V0 1 2, please go to counter A3", rate=1.0
    )
    own = spoken("A001", "VIP室", zh_template="{number}请到{counter}", en_template=None, rate=0.8)
    assert own.zh == "A零零一请到VIP室" and own.en == "Ticket A0 0 1, please go to VIP室"
    assert chinese_runs(own.en) == [("Ticket A0 0 1, please go to VIP", False), ("室", True)]
    assert chinese_runs("go to 综合业务，谢谢. Thanks!") == [
        ("go to", False),
        ("综合业务，谢谢", True),
        (". Thanks!", False),
    ]
    assert chinese_runs("Ticket A0 0 1, please go to 1号窗口。") == [
        ("Ticket A0 0 1, please go to 1", False),
        ("号窗口。", True),
    ]


# -- on a real server: the stream, and how soon a screen has the audio ---------------------------


async def next_event(ws: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 15))
        if message["type"] == kind:
            return message


async def first_byte_s(http: httpx.AsyncClient, path: str, headers: Any) -> float:
    """Seconds from asking for `path` to its first byte of audio."""
    started = time.perf_counter()
    async with http.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
        async for _ in response.aiter_raw():
            return time.perf_counter() - started
    raise AssertionError("no audio")


@pytest.mark.multiprocess
async def test_the_stream_carries_the_audio_and_a_screen_has_it_soon(database_url, capsys):
    """A screen on the stream gets `announcement.audio` (null in browser mode) and fetches it
    with its display token, as the display page does. Measured: from `next` returning to the
    call on the stream, to the first byte of freshly rendered audio (cold), and to the first
    byte of the same audio fetched again (cached in the server process)."""
    rounds = 8
    with running_servers(database_url, 1) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:
            await hall(http, tickets=rounds + 1, mode="browser")
            display = bearer(await new_token(http, "display", "hz01"))
            url = f"{server.ws_url}{B}/stream"
            async with connect(url, additional_headers=display) as ws:
                await next_event(ws, "snapshot")
                await http.post(f"{B}/counters/1/next", headers=ADMIN)
                called = (await next_event(ws, "ticket.called"))["data"]["announcement"]
                assert called["audio"] is None
                await put_branch(http, mode="server")
                await http.post(f"{B}/counters/1/recall", headers=ADMIN)
                recalled = (await next_event(ws, "ticket.recalled"))["data"]["announcement"]
                assert recalled["zh"] == called["zh"] and recalled["audio"] is not None
                await fetch_audio(http, recalled["audio"], display)

                on_stream, cold, cached = [], [], []
                for _ in range(rounds):
                    pressed = await http.post(f"{B}/counters/1/next", headers=ADMIN)
                    returned = time.perf_counter()
                    assert pressed.status_code == 200
                    path = (await next_event(ws, "ticket.called"))["data"]["announcement"]["audio"]
                    on_stream.append(time.perf_counter() - returned)
                    await first_byte_s(http, path, display)
                    cold.append(time.perf_counter() - returned)
                    cached.append(await first_byte_s(http, path, display))
    with capsys.disabled():
        for name, figures in (("on the stream", on_stream), ("cold", cold), ("cached", cached)):
            median_ms, max_ms = statistics.median(figures) * 1000, max(figures) * 1000
            print(
                f"\n  announcement audio, {name}: median {median_ms:.0f} ms,"
                f" max {max_ms:.0f} ms over {rounds} calls",
                end="",
            )
    # Generous bounds for a shared CI machine; docs/announcements.md has the measured figures.
    assert max(cold) < 2.0, cold
    assert statistics.median(cached) < statistics.median(cold), (cached, cold)
