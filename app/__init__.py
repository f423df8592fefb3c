"""The faces of the studio: the ``dit-studio`` command line and the Gradio web app."""
