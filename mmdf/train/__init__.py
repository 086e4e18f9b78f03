"""One k-fold trainer shared by the audio and the visual branch."""
