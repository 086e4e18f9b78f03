"""Parameters of preprocessing; the ones that change the features key the cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class MelConfig:
    """Mel-spectrogram image; defaults reproduce the FFDV reference recipe exactly.

    Reference (``generate_mel_spectrogram``): audio as ``librosa.load`` gives it
    (mono, 22,050 Hz, soxr_hq), ``librosa.feature.melspectrogram`` with 128 mels
    and librosa's other defaults, ``power_to_db(ref=np.max)``, min-max to uint8,
    bilinear resize to 256x256.
    """

    sample_rate: int = 22050
    n_mels: int = 128
    n_fft: int = 2048
    hop_length: int = 512
    fmin: float = 0.0
    fmax: float | None = None  # None = sample_rate / 2 (librosa's default; the notebook's fmax is unused)
    top_db: float | None = 80.0
    image_size: int = 256  # output image is (image_size, image_size) uint8
    resample_quality: str = "soxr_hq"  # librosa res_type used by librosa.load
    pad_to_container: bool = True  # pad/cut audio to the container's duration, as moviepy does
    via_rate: int | None = 44100  # the reference's WAV rate, reached with ffmpeg's resampler; null = native


@dataclass
class FaceConfig:
    """Face sampling, detection, tracking and cropping."""

    num_frames: int = 16  # K frames spread evenly over the clip (all frames when fewer)
    # Decode only frames other frames refer to (skips most B-frames, about half the
    # decoding); each of the K targets then gets the nearest decoded frame.
    skip_nonref: bool = True
    detect_size: int = 640  # longer side of the frame MTCNN sees at least; boxes are mapped back
    min_face_size: int = 32  # MTCNN's smallest face, in pixels of the frame it sees
    # The smallest face worth finding, as a share of the frame's shorter side; a face smaller than the
    # crop holds at its own resolution (crop_size / (1 + 2 margin) px) is not worth finding either. A
    # larger frame is shown to MTCNN larger (see faces.detect_scale), so that a run set up on small
    # clips still finds the faces of 1080p footage; the crops keep crop_size and margin.
    min_face_share: float = 0.1  # 108 px in 1080p: the DFDC talking heads (100-240 px) are found
    thresholds: list[float] = field(default_factory=lambda: [0.6, 0.7, 0.7])
    min_confidence: float = 0.9  # detections below this are ignored
    # Whole-frame detection on every n-th sampled frame (and the last); in the frames
    # between, the main face is re-detected only in a small region around its
    # interpolated box. 1 = whole-frame detection on every frame.
    detect_every: int = 4
    roi_scale: float = 2.0  # side of that region, in face-box sides
    roi_size: int = 96  # the region is resized to roi_size x roi_size pixels for MTCNN
    track_iou: float = 0.2  # least box overlap to follow the main face to the next frame
    # Between key frames whose boxes overlap this much, interpolate instead of detecting; > 1 = always detect.
    interpolate_iou: float = 0.6
    margin: float = 0.3  # added on each side of the (squared) face box, as a share of its size
    crop_size: int = 224  # crops are (crop_size, crop_size, 3) RGB uint8
    # How the face crops and the sync window's mouth crops are stored (mmdf.prepare.store):
    # "jpeg", "webp", "png" (lossless) or "raw" (uncompressed, 10x the disk); quality 0-100 (jpeg, webp).
    codec: Literal["jpeg", "webp", "png", "raw"] = "jpeg"
    quality: int = 95
    batch_size: int = 16  # frames per MTCNN call; bounds detector memory


@dataclass
class SyncConfig:
    """The sync half (see :mod:`mmdf.prepare.mouth`): every frame of a window, the mouth in each, its audio."""

    window: float = 4.0  # seconds from the middle of the used span (all of it when shorter)
    min_frames: int = 25  # a window with fewer frames (a clip under ~1 s) is `too_short` for sync
    frame_size: int = 480  # longer side the window's frames are scaled down to (the crops are small)
    # Frames with the mouth's landmarks the window needs: the face half's (its K frames) when that many
    # fall in it, else MTCNN looks at this many frames of the window itself; interpolated between them.
    detect_frames: int = 3
    # Seconds beyond each end of the window within which the face half's frames still count (and bound
    # the interpolation of the window's first and last frames): the K frames rarely fall on its edges.
    anchor_margin: float = 0.5
    mouth_size: int = 48  # grey mouth crops (S, S) uint8
    mouth_scale: float = 0.5  # side of the mouth (and upper-face) region, in face-box widths
    sample_rate: int = 16000  # the audio features' rate
    n_mels: int = 40  # coarse log-mel bands per video frame


@dataclass
class PrepareConfig:
    """How `mmdf prepare` runs; the fields of ``cache.NOT_IN_KEY`` (speed only) do not change the cache key."""

    workers: int = 0  # worker processes; 0 = all cores
    device: str = "cpu"  # MTCNN device in each worker, e.g. "cuda" or "cuda:1"
    min_duration: float = 1.0  # seconds; a shorter audio or video stream is `too_short`
    # A longer clip is represented by its middle max_duration seconds (both streams, and only
    # that part is decoded, so memory does not grow with the clip); null = the whole clip.
    max_duration: float | None = 60.0
    # A clip whose streams stop short of the durations its container declares (a download cut
    # short) is `truncated`. "skip": the truncated modality gets no features (the branches leave
    # it out); "use": features from what decoded, the modality's own status stays as it is.
    truncated: Literal["skip", "use"] = "skip"
    # Share of a stream's expected duration that may be missing before it counts as truncated
    # (at least 0.1 s: codecs pad or trim a frame or two at the end).
    truncated_tolerance: float = 0.02
    progress: bool = True  # tqdm bar with clips/s and ETA
    # Run clips in worker processes, so that a decoder crash costs one clip, not the run;
    # false runs them in this process (debugging, a handful of clips for `mmdf predict`).
    isolate: bool = True
    # "local": worker processes on this machine; "ray": Ray tasks on a cluster (mmdf.prepare.ray_engine;
    # `pip install "mmdf[ray]"`), at `address` ("auto", "ray://head:10001", host:port; null: start a local Ray)
    engine: Literal["local", "ray"] = "local"
    address: str | None = None
    mel: MelConfig = field(default_factory=MelConfig)
    faces: FaceConfig = field(default_factory=FaceConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
