"""Turn clips into cached model inputs: mel-spectrogram images and face crops."""
