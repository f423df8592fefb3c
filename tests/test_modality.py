"""One token definition per modality (pipelines/modality.py): the trainer and the pipelines
lay tokens out through the same objects, so a model is sampled in the layout it was trained on."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from conditioning.mel import MelCodec
from dit.tokens import audio_positions, image_positions, patchify_video, video_positions
from pipelines.modality import AudioTokens, ImageTokens, VideoTokens, streams_of
from pipelines.registry import load_pipeline
from pipelines.request import Request
from pipelines.spec import ModelSpec
from training.media import media_of
from training.recipe import Recipe


def test_image_tokens_round_trip_and_lay_out_rows_of_patches():
    image = ImageTokens(channels=3, patch=4)
    x = torch.randn(2, 3, 8, 12)
    tokens = image.encode(x)
    assert tokens.shape == (2, 6, 48) and image.dim == 48
    assert torch.equal(image.decode(tokens, 8, 12), x)
    lay = image.layout(8, 12)
    assert (lay.tokens, lay.dim) == (6, 48)
    assert torch.equal(lay.positions, image_positions(2, 3))
    # token 1 is the patch right of token 0
    assert torch.equal(tokens[0, 1], x[0, :, :4, 4:8].flatten())


def test_video_tokens_round_trip_with_time_in_seconds():
    video = VideoTokens(channels=3, patch=2, tpatch=2)
    clips = torch.randn(1, 4, 3, 4, 6)
    tokens = video.encode(clips)
    assert torch.equal(tokens, patchify_video(clips, 2, 2))
    assert torch.equal(video.decode(tokens, 4, 4, 6), clips)
    lay = video.layout(4, 4, 6, fps=8.0)
    assert lay.tokens == 2 * 2 * 3 == tokens.shape[1]
    assert torch.equal(lay.positions, video_positions(4, 2, 3, 8.0, 2))
    assert lay.positions[:, 1].unique().tolist() == [0.0, 0.25]  # tubelets start at 0 s, 0.25 s


def test_audio_tokens_cover_the_duration():
    codec = MelCodec(n_mels=16, frames_per_token=4)
    audio = AudioTokens(codec)
    lay = audio.layout(1.0)
    assert lay.tokens == codec.tokens_for(1.0) and lay.dim == codec.token_dim
    assert torch.equal(lay.positions, audio_positions(lay.tokens, codec.seconds_per_token))
    assert lay.tokens * codec.seconds_per_token >= 1.0 > (lay.tokens - 1) * codec.seconds_per_token


def test_an_unknown_modality_names_the_known_ones():
    spec = ModelSpec(name="m", modality="smell", objective="flow")
    with pytest.raises(ValueError, match=r"known: .*'audio'.*'image'"):
        streams_of(spec)


# (bundled model, the recipe that made it)
BUNDLED = [
    ("shapes-t2i", "shapes-t2i"),
    ("sounds-t2a", "sounds-t2a-xs-long"),
    ("motion-t2v", "motion-t2v-scratch"),
    ("bounce-t2av", "bounce-t2av"),
]


@pytest.mark.parametrize(("model", "made_by"), BUNDLED)
def test_a_training_item_is_laid_out_as_the_bundled_pipeline_lays_out_its_request(model, made_by):
    """Training tokens and positions of a real item of the model's recipe equal what the
    bundled pipeline lays out for a request of the item's size, stream by stream."""
    from training.data import make_source
    from training.trainer import stack

    recipe = replace(
        Recipe.load(made_by), init="", init_trunk="", init_text_encoder="", data_size=8
    )
    media, pipe = media_of(recipe), load_pipeline(model)
    item, caption = make_source(recipe).item(0)
    tokens, positions = media.tokens(stack([item]))
    tokens = tokens if isinstance(tokens, dict) else {media.stream: tokens}
    positions = positions if isinstance(positions, dict) else {media.stream: positions}
    size = {}
    if "audio" in tokens:
        size["duration"] = tokens["audio"].shape[1] * pipe.codec.seconds_per_token
    if pipe.spec.timed and "video" in tokens:
        size.update(duration=recipe.seconds, fps=recipe.fps)
    layouts = pipe.layouts(pipe.resolve(Request(caption, **size)))
    assert [lay.stream for lay in layouts] == list(tokens)
    for lay in layouts:
        assert (lay.tokens, lay.dim) == tuple(tokens[lay.stream].shape[1:])
        assert torch.equal(lay.positions, positions[lay.stream])
    assert [c.in_dim for c in media.stream_configs()] == [lay.dim for lay in layouts]


def test_a_bundled_pipeline_uses_the_definition_of_its_spec():
    pipe = load_pipeline("sounds-t2a")
    assert pipe.streams == streams_of(pipe.spec)
    req = pipe.resolve(Request("a bell", duration=1.5))
    lay, want = pipe.layout(req), pipe.streams["audio"].layout(1.5)
    assert (lay.stream, lay.tokens, lay.dim) == (want.stream, want.tokens, want.dim)
    assert torch.equal(lay.positions, want.positions)
