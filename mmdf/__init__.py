"""mmdf: audio-video deepfake detection."""

__version__ = "0.1.0"
