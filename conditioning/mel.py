"""The audio codec: waveform <-> normalised log-mel frames, on torchaudio's transforms.

Encoding is torchaudio's ``MelSpectrogram``; decoding inverts the mel filterbank with
``InverseMelScale`` and recovers a phase with ``GriffinLim``. It has no weights: its settings
travel in the model folder's index (``ModelSpec.extra["codec"]``).

Tokens: ``frames_per_token`` consecutive mel frames flattened into one token of
``frames_per_token * n_mels`` values, each token carrying its start time in seconds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

import torch
import torchaudio


@dataclass(frozen=True)
class MelCodec:
    sample_rate: int = 16_000
    n_fft: int = 1024
    hop: int = 256
    n_mels: int = 80
    f_min: float = 20.0
    f_max: float = 8_000.0
    frames_per_token: int = 2
    # log-mel -> roughly zero mean, unit spread on the sound world (measured, then fixed here)
    log_floor: float = 1e-5
    mean: float = -7.0
    std: float = 3.5
    griffin_lim_iters: int = 32

    # --- sizes -------------------------------------------------------------------------------

    @property
    def token_dim(self) -> int:
        return self.frames_per_token * self.n_mels

    @property
    def seconds_per_token(self) -> float:
        return self.frames_per_token * self.hop / self.sample_rate

    def tokens_for(self, seconds: float) -> int:
        """Tokens that cover ``seconds`` of audio (the last one partly)."""
        return max(1, math.ceil(seconds / self.seconds_per_token - 1e-9))

    def semitones_per_band(self, f: float) -> float:
        """How coarse the frequency axis is at ``f`` Hz, in semitones: the wider of the mel
        band spacing there (torchaudio's default HTK mel scale) and the STFT bin width."""
        # The HTK formula written here: torchaudio's own (_hz_to_mel) is private.
        mel = lambda hz: 2595.0 * math.log10(1.0 + hz / 700.0)  # noqa: E731
        spacing = (mel(self.f_max) - mel(self.f_min)) / (self.n_mels + 1)  # mel per band
        band_hz = spacing * (700.0 + f) * math.log(10.0) / 2595.0  # d(hz)/d(mel) x spacing
        width = max(band_hz, self.sample_rate / self.n_fft)
        return 12.0 * math.log2(1.0 + width / f)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # --- transforms (built once per codec) ---------------------------------------------------

    @cached_property
    def _mel(self) -> torchaudio.transforms.MelSpectrogram:
        return torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            hop_length=self.hop,
            n_mels=self.n_mels,
            f_min=self.f_min,
            f_max=self.f_max,
            power=2.0,
            center=True,
        )

    @cached_property
    def _inverse_mel(self) -> torchaudio.transforms.InverseMelScale:
        return torchaudio.transforms.InverseMelScale(
            n_stft=self.n_fft // 2 + 1,
            n_mels=self.n_mels,
            sample_rate=self.sample_rate,
            f_min=self.f_min,
            f_max=self.f_max,
        )

    @cached_property
    def _griffin_lim(self) -> torchaudio.transforms.GriffinLim:
        return torchaudio.transforms.GriffinLim(
            n_fft=self.n_fft, hop_length=self.hop, power=2.0, n_iter=self.griffin_lim_iters
        )

    # --- encode / decode ---------------------------------------------------------------------

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, T) waveform in [-1, 1] -> (B, F, n_mels) normalised log-mel frames."""
        mel = self._mel.to(wave.device)(wave.float())  # (B, n_mels, F)
        logmel = torch.log(mel.clamp_min(self.log_floor))
        return ((logmel - self.mean) / self.std).transpose(1, 2)

    def decode(self, frames: torch.Tensor, num_samples: int | None = None) -> torch.Tensor:
        """(B, F, n_mels) normalised log-mel -> (B, T) waveform (Griffin-Lim phase), clipped
        to [-1, 1] and cut to ``num_samples`` when given."""
        power = torch.exp(frames.float().transpose(1, 2) * self.std + self.mean)  # (B, M, F)
        power = torch.where(power <= self.log_floor * 1.0001, torch.zeros_like(power), power)
        # InverseMelScale and GriffinLim run on the CPU here: they are a small share of the
        # time next to sampling, and the CPU is where the bundled models run.
        spec = self._inverse_mel(power.cpu()).clamp_min(0)  # (B, n_fft/2+1, F)
        # Griffin-Lim draws its start phase from the global RNG: fixed here (the caller's RNG
        # left alone), and item by item, so a clip does not depend on its batch.
        waves = []
        with torch.random.fork_rng(devices=[]):
            for item in spec:
                torch.manual_seed(0)
                waves.append(self._griffin_lim(item))
        wave = torch.stack(waves)
        if num_samples is not None:
            wave = wave[..., :num_samples]
            if wave.shape[-1] < num_samples:
                wave = torch.nn.functional.pad(wave, (0, num_samples - wave.shape[-1]))
        return wave.clamp(-1, 1)

    def to_tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, F, n_mels) -> (B, N, frames_per_token * n_mels); F padded (with silence) up to a
        multiple of frames_per_token."""
        b, f, m = frames.shape
        k = self.frames_per_token
        pad = (-f) % k
        if pad:
            silence = torch.full(
                (b, pad, m), self.silence, dtype=frames.dtype, device=frames.device
            )
            frames = torch.cat([frames, silence], dim=1)
        return frames.reshape(b, -1, k * m)

    def clip_tokens(self, samples: torch.Tensor, duration: float) -> torch.Tensor:
        """Tokens (N, D) of ``samples`` (S,): exactly the N a request for ``duration`` gets,
        longer sound cut off, shorter padded with silence."""
        n = self.tokens_for(duration)
        tokens = self.to_tokens(self.encode(samples[None]))[0, :n]
        if len(tokens) < n:
            pad = torch.full((n - len(tokens), tokens.shape[1]), self.silence)
            tokens = torch.cat([tokens, pad])
        return tokens

    def from_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, frames_per_token * n_mels) -> (B, N * frames_per_token, n_mels)."""
        b, n, _ = tokens.shape
        return tokens.reshape(b, n * self.frames_per_token, self.n_mels)

    @property
    def silence(self) -> float:
        """The normalised value of a silent mel bin."""
        return (math.log(self.log_floor) - self.mean) / self.std
