"""Joint audio + video: one model, a video and an audio stream sampled together, an MP4 with
its sound track out.

Both streams' tokens carry time in seconds on one axis (video tubelets their first frame's
time, audio tokens their start), so an impact and its thud share a rotary phase whatever the
fps. The same model adds sound to a given clip (video-to-audio) or pictures to a given sound
(audio-to-video): the given stream enters clean, its time held at t = 1, as in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .audio import decode_audio, spectrogram_figure
from .base import Layout, Output
from .figures import MARGIN_LEFT, frame_grid
from .mp4 import mp4_bytes
from .request import Request
from .video import TextToVideoPipeline, display_scale


@dataclass
class AudioVideo:
    """What the pipeline makes: frames (F, H, W, 3) uint8 and a wave (T,) float32 of the same
    duration."""

    frames: np.ndarray
    audio: np.ndarray


class TextToAudioVideoPipeline(TextToVideoPipeline):
    class_name = "TextToAudioVideoPipeline"

    def __init__(self, transformer, text_encoder, spec, autoencoder=None, rewriter=None) -> None:
        super().__init__(transformer, text_encoder, spec, autoencoder, rewriter)
        self.codec = self.streams["audio"].codec

    def layouts(self, request: Request) -> list[Layout]:
        return [self.layout(request), self.streams["audio"].layout(request.duration)]

    def guidance_scales(self, request: Request) -> float | dict[str, float]:
        """LTX-2's modality-aware guidance: the audio stream may have its own scale."""
        if request.audio_guidance is None:
            return request.guidance
        return {self.stream: request.guidance, "audio": request.audio_guidance}

    def decode(self, x: dict[str, torch.Tensor], request: Request) -> list[AudioVideo]:
        frames = self.frames_of(x[self.stream], request)
        waves = decode_audio(self.codec, x["audio"], request.duration)
        return [AudioVideo(f, w) for f, w in zip(frames, waves, strict=True)]

    def preview(self, x: dict[str, torch.Tensor], request: Request) -> list[np.ndarray]:
        """The frames in a grid above the spectrogram with its time and frequency axes."""
        out = []
        for video, mel in zip(
            self.frames_of(x[self.stream], request), self.codec.from_tokens(x["audio"]), strict=True
        ):
            figure = spectrogram_figure(mel, self.codec)
            grid = frame_grid(video)
            # the grid as wide as the plot area (the figure less its axis margins), whole pixels
            area = figure.shape[1] - MARGIN_LEFT - 8
            grid = grid.repeat(max(1, area // grid.shape[1]), 0).repeat(
                max(1, area // grid.shape[1]), 1
            )[:, :area]
            top = np.full((grid.shape[0] + 6, figure.shape[1], 3), 255, np.uint8)
            top[: grid.shape[0], MARGIN_LEFT : MARGIN_LEFT + grid.shape[1]] = grid
            out.append(np.concatenate([top, figure], axis=0))
        return out

    def encode_file(self, media: AudioVideo, settings: dict[str, Any]) -> bytes:
        scale = display_scale(media.frames.shape[2], media.frames.shape[1])
        return mp4_bytes(
            media.frames,
            settings["fps"],
            settings,
            audio=media.audio,
            sample_rate=self.codec.sample_rate,
            scale=scale,
        )

    # --- one stream given ---------------------------------------------------------------------

    def video_to_audio(
        self, frames: np.ndarray, request: Request | str, callback=None, **overrides: Any
    ) -> list[Output]:
        """Sound for a given clip (F, H, W, 3) uint8 at ``request.fps``: the duration and size
        come from the clip."""
        duration = len(frames) / self._fps(request, overrides)
        req = self.resolve(
            request, **overrides, duration=duration, width=frames.shape[2], height=frames.shape[1]
        )
        tokens = self.video_tokens(frames[None])
        lay = self.layout(req)
        given = {self.stream: (tokens.expand(req.num_outputs, -1, -1), lay.positions)}
        audio = self.sample(req, callback, given=given)
        waves = decode_audio(self.codec, audio, req.duration)
        return self._outputs(req, [AudioVideo(frames, w) for w in waves])

    def audio_to_video(
        self, wave: np.ndarray, request: Request | str, callback=None, **overrides: Any
    ) -> list[Output]:
        """Pictures for a given sound (T,) float at the model's sample rate."""
        req = self.resolve(request, **overrides, duration=len(wave) / self.codec.sample_rate)
        tokens = self.codec.clip_tokens(torch.from_numpy(wave).float(), req.duration)[None]
        lay = self.streams["audio"].layout(req.duration)
        given = {"audio": (tokens.expand(req.num_outputs, -1, -1), lay.positions)}
        video = self.sample(req, callback, given=given)
        frames = self.frames_of(video, req)
        return self._outputs(req, [AudioVideo(f, wave.astype(np.float32)) for f in frames])

    def video_tokens(self, clips: np.ndarray) -> torch.Tensor:
        """(B, F, H, W, 3) uint8 clips -> (B, N, D) video tokens, as the model sees them."""
        video = torch.from_numpy(np.ascontiguousarray(clips)).permute(0, 1, 4, 2, 3)
        video = video.float() / 127.5 - 1  # (B, F, 3, H, W) in [-1, 1]
        return self.streams[self.stream].encode(video)

    def _fps(self, request: Request | str, overrides: dict[str, Any]) -> float:
        fps = overrides.get("fps", getattr(request, "fps", None))
        return fps if fps is not None else self.spec.fps

    def _outputs(self, req: Request, media: list[AudioVideo]) -> list[Output]:
        return [Output(m, self.settings(req, i), self.suffix) for i, m in enumerate(media)]
