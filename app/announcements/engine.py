"""The speech engine: espeak-ng, run as a command, turns a `Speech` into one WAV file, the
Chinese words, a short pause, the English words (their Chinese runs said in Mandarin).

espeak-ng is a Debian package (`apt-get install espeak-ng`) with its voices inside; nothing is
downloaded at run time. Each text is one `espeak-ng` process (text on stdin, so no text can
pass for an option), bounded in time (`timeout_s`) and in number (`concurrency` engine
processes at once in this server process). espeak-ng streams its WAV and so leaves a
placeholder in the header's sizes; the parts are joined and written again with the `wave`
module, which writes the right ones.

Rendered audio is kept per `Speech` (its words and rate) in a least-recently-used cache bounded
in bytes, and a speech being rendered is rendered once however many screens ask at the same
moment: they wait for the same render.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import shutil
import wave
from collections import OrderedDict
from collections.abc import Callable

from app.announcements.speech import Speech, chinese_runs
from app.core.errors import Problem

log = logging.getLogger("hallq.announcements")

ZH_VOICE = "cmn-latn-pinyin"  # Mandarin; the plain `cmn` voice of espeak-ng 1.51 misreads
EN_VOICE = "en-us"  # most characters (docs/announcements.md, "The engine")
NORMAL_WPM = 175  # espeak-ng's own default speed: rate 1.0
MIN_WPM, MAX_WPM = 80, 450  # the speeds espeak-ng accepts
PAUSE_S = 0.5  # between the Chinese and the English


class SpeechUnavailable(Problem):
    """The engine is missing or failed: a 503 problem, never a 500."""

    def __init__(self, slug: str, detail: str) -> None:
        super().__init__(503, slug, detail, title="Speech engine unavailable")


def words_per_minute(rate: float) -> int:
    return max(MIN_WPM, min(MAX_WPM, round(NORMAL_WPM * rate)))


def join_wav(parts: list[bytes], pause_s: float = PAUSE_S) -> bytes:
    """One WAV of `parts` (WAV files of one format, headers possibly wrong) with `pause_s` of
    silence between them, its header written anew."""
    frames: list[bytes] = []
    params: tuple[int, int, int] | None = None
    for part in parts:
        with wave.open(io.BytesIO(part)) as reader:
            these = (reader.getnchannels(), reader.getsampwidth(), reader.getframerate())
            if params is not None and these != params:
                raise ValueError(f"the parts differ in format: {these} and {params}")
            params = these
            # The frame count in a streamed header is a placeholder: read what is there.
            frames.append(reader.readframes(reader.getnframes()))
    if params is None:
        raise ValueError("nothing to join")
    channels, width, framerate = params
    silence = b"\0" * (round(framerate * pause_s) * channels * width)
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(framerate)
        writer.writeframes(silence.join(frames))
    return out.getvalue()


class AudioCache:
    """Rendered audio by speech, least recently used first out, at most `max_bytes` in all."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[Speech, bytes] = OrderedDict()

    def get(self, speech: Speech) -> bytes | None:
        audio = self._entries.get(speech)
        if audio is not None:
            self._entries.move_to_end(speech)
        return audio

    def put(self, speech: Speech, audio: bytes) -> None:
        if len(audio) > self.max_bytes or speech in self._entries:
            return
        self._entries[speech] = audio
        self.size += len(audio)
        while self.size > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self.size -= len(dropped)

    def __len__(self) -> int:
        return len(self._entries)


class SpeechEngine:
    """One per server process (`app.state.speech`): renders, caches, and bounds the renders."""

    def __init__(
        self,
        command: str = "espeak-ng",
        *,
        timeout_s: float = 10.0,
        concurrency: int = 2,
        cache_bytes: int = 32 * 2**20,
        which: Callable[[str], str | None] = shutil.which,
    ) -> None:
        self.command = command
        self.cache = AudioCache(cache_bytes)
        self.renders = 0  # renders started, for tests and measurements
        self._timeout_s = timeout_s
        self._slots = asyncio.Semaphore(concurrency)
        self._which = which
        self._rendering: dict[Speech, asyncio.Task[bytes]] = {}
        self._told_missing = False

    async def wav(self, speech: Speech) -> bytes:
        """The speech as WAV: from the cache, else from the render under way, else rendered."""
        cached = self.cache.get(speech)
        if cached is not None:
            return cached
        task = self._rendering.get(speech)
        if task is None:
            task = asyncio.create_task(self._render_and_keep(speech))
            self._rendering[speech] = task
            task.add_done_callback(lambda done: self._forget(speech, done))
        # A request that goes away does not cancel a render the others wait for.
        return await asyncio.shield(task)

    def _forget(self, speech: Speech, task: asyncio.Task[bytes]) -> None:
        self._rendering.pop(speech, None)
        if not task.cancelled():
            task.exception()  # retrieved here when nobody waits for it any more

    async def _render_and_keep(self, speech: Speech) -> bytes:
        executable = self._executable()
        self.renders += 1
        wpm = str(words_per_minute(speech.rate))
        english = [
            self._say(executable, ZH_VOICE if chinese else EN_VOICE, wpm, run)
            for run, chinese in chinese_runs(speech.en)
        ]
        zh, *en = await asyncio.gather(self._say(executable, ZH_VOICE, wpm, speech.zh), *english)
        try:
            audio = join_wav([zh, join_wav(en, pause_s=0.0)]) if en else join_wav([zh])
        except (wave.Error, EOFError, ValueError) as exc:
            log.warning("%s wrote audio that cannot be read: %s", self.command, exc)
            raise SpeechUnavailable(
                "speech-engine-failed", "the speech engine failed; see the log"
            ) from None
        self.cache.put(speech, audio)
        return audio

    def _executable(self) -> str:
        executable = self._which(self.command)
        if executable is None:
            if not self._told_missing:  # once per process, not once per call
                log.error(
                    "the speech engine %r is not installed: calls are announced without server "
                    "audio (apt-get install espeak-ng; docs/announcements.md)",
                    self.command,
                )
                self._told_missing = True
            raise SpeechUnavailable(
                "speech-engine-missing",
                f"the speech engine ({self.command}) is not installed on this server; "
                "install espeak-ng, or set the branch's announcement mode to browser",
            )
        return executable

    async def _say(self, executable: str, voice: str, wpm: str, text: str) -> bytes:
        """One espeak-ng process: `text` as a WAV (with the streamed header's placeholders)."""
        async with self._slots:
            process = await asyncio.create_subprocess_exec(
                *(executable, "-v", voice, "-s", wpm, "-b", "1", "--stdin", "--stdout"),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                async with asyncio.timeout(self._timeout_s):
                    out, err = await process.communicate(text.encode() + b"\n")
            except TimeoutError:
                log.warning("%s took longer than %.1f s: stopped", self.command, self._timeout_s)
                raise SpeechUnavailable(
                    "speech-engine-failed", "the speech engine took too long; retry shortly"
                ) from None
            finally:
                if process.returncode is None:  # timed out, or the server is stopping
                    process.kill()
                    with contextlib.suppress(ProcessLookupError):
                        await process.wait()
        if process.returncode != 0 or not out:
            log.warning(
                "%s -v %s failed (exit %s): %s",
                self.command,
                voice,
                process.returncode,
                err.decode(errors="replace")[:300],
            )
            raise SpeechUnavailable("speech-engine-failed", "the speech engine failed; see the log")
        return out

    async def close(self) -> None:
        """Stop the renders under way (the server is stopping)."""
        tasks = list(self._rendering.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
