"""``python -m training.eval_tokenizer NAME``: the issues' name for
:mod:`training.eval_autoencoder` (an FSQ autoencoder is the masked models' tokenizer)."""

from .eval_autoencoder import main

if __name__ == "__main__":
    raise SystemExit(main())
