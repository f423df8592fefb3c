"""Text to audio: normalised log-mel tokens in, a 16-bit PCM WAV out.

Each token is ``frames_per_token`` mel frames and carries its start time in seconds, so one
model makes any duration up to its limit: the request's seconds set the token count.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from conditioning.mel import MelCodec

from .base import Layout, Pipeline
from .figures import frequency_ticks, time_ticks, with_axes
from .outputs import wav_bytes
from .request import Request

# A dark-to-bright ramp (black, purple, orange, pale yellow) for spectrogram previews.
_RAMP = np.array([[0, 0, 0], [90, 20, 120], [230, 90, 40], [250, 240, 180]], np.float32)


def spectrogram_image(frames: torch.Tensor, silence: float, height: int = 128) -> np.ndarray:
    """(F, n_mels) normalised log-mel -> (n_mels * k, F * k, 3) uint8, low pitches at the
    bottom: what the app shows while sampling."""
    x = frames.float().cpu().numpy().T[::-1]  # (n_mels, F), high mels first
    x = np.clip((x - silence) / max(x.max() - silence, 1e-6), 0, 1)
    stops = np.linspace(0, 1, len(_RAMP))
    rgb = np.stack([np.interp(x, stops, _RAMP[:, c]) for c in range(3)], -1).astype(np.uint8)
    k = max(1, height // rgb.shape[0])
    return rgb.repeat(k, 0).repeat(k, 1)


def spectrogram_figure(
    frames: torch.Tensor, codec: MelCodec, height: int = 240, min_width: int = 480
) -> np.ndarray:
    """(F, n_mels) normalised log-mel -> the spectrogram at least ``min_width`` pixels wide
    with its time axis (seconds) below and its frequency axis (Hz, on the mel scale) left."""
    image = spectrogram_image(frames, codec.silence, height)
    image = image.repeat(max(1, -(-min_width // image.shape[1])), axis=1)
    seconds = frames.shape[0] * codec.hop / codec.sample_rate
    return with_axes(image, time_ticks(seconds), frequency_ticks(codec.f_min, codec.f_max))


def decode_audio(codec: MelCodec, x: torch.Tensor, duration: float) -> list[np.ndarray]:
    """(B, N, D) mel tokens -> waves (T,) float32 of exactly ``duration`` seconds."""
    waves = codec.decode(codec.from_tokens(x), round(duration * codec.sample_rate))  # (B, T)
    return list(waves.numpy().astype(np.float32))


class TextToAudioPipeline(Pipeline):
    class_name = "TextToAudioPipeline"
    suffix = ".wav"

    def __init__(self, transformer, text_encoder, spec, autoencoder=None, rewriter=None) -> None:
        super().__init__(transformer, text_encoder, spec, autoencoder, rewriter)
        self.codec = self.streams["audio"].codec

    def layout(self, request: Request) -> Layout:
        return self.streams["audio"].layout(request.duration)

    def decode(self, x: torch.Tensor, request: Request) -> list[np.ndarray]:
        return decode_audio(self.codec, x, request.duration)

    def codes_to_tokens(self, codes: torch.Tensor, request: Request) -> torch.Tensor:
        """(B, N) codes -> (B, N, frames_per_token * n_mels) mel tokens."""
        return self.codec.to_tokens(self.autoencoder.decode(codes))

    @property
    def masked_token_value(self) -> float:  # a masked span previews as silence
        return self.codec.silence

    def preview(self, x: torch.Tensor, request: Request) -> list[np.ndarray]:
        """Spectrograms, not sound: a Griffin-Lim decode every step would cost more than the
        step itself."""
        return [spectrogram_figure(f, self.codec) for f in self.codec.from_tokens(x)]

    def encode_file(self, media: np.ndarray, settings: dict[str, Any]) -> bytes:
        return wav_bytes(media, self.codec.sample_rate, settings)
