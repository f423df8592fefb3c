"""Conditioning: text encoders, tokenizers and the codec of each modality.

They turn prompts and media into model tokens and back.
"""
