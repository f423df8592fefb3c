"""Conditioning: text encoders, autoencoders and the codec of each modality.

They turn prompts and media into model tokens and back.
"""
