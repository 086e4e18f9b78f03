"""A synthetic FFDV-layout audio-video deepfake dataset for demos and tests."""
