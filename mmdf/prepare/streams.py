"""What one half of a clip's features depends on, as a digest of its stream: so that a file whose
audio (or video) stream is byte for byte another's reuses that half instead of computing it again.

A copy that re-encodes one stream and copies the other (``ffmpeg -c:a copy``: the
audit's perturbations, a re-muxed upload) leaves the copied half's features as
they were; face detection is the expensive half. The digest covers everything
that half of :func:`mmdf.prepare.clip.process_clip` reads: the stream's codec
parameters and every packet (timestamps and bytes), its duration, the used span
where the clip is cut to ``prepare.max_duration``, and for the audio the
container's duration (the mel image is padded to it); for the video the first
frame's rotation (a display matrix can be changed without touching a packet).
The feature parameters themselves are in the cache folder's key already.
The sync half reads both streams; its key is the video's (the mouth crops are
its cost, and the face half's landmarks that place them come from the same stream),
and a file lent one makes only the audio of the same frames anew.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mmdf.prepare.media import open_without_video_probe, probe, used_span

AUDIO_KIND, VIDEO_KIND, SYNC_KIND = "mel", "faces", "sync"


def _codec_params(stream) -> list:
    cc = stream.codec_context
    return [cc.name, bytes(cc.extradata or b"").hex(), str(stream.time_base),
            getattr(cc, "sample_rate", None), getattr(cc, "channels", None), getattr(cc, "width", None),
            getattr(cc, "height", None), getattr(cc, "format", None) and cc.format.name]


def _packets_digest(container, stream, digest) -> int | None:
    """Feed every packet of ``stream`` into ``digest``; the first decoded frame's rotation (video)."""
    rotation = None
    for packet in container.demux(stream):
        if packet.size == 0:
            continue
        digest.update(f"{packet.pts}:{packet.dts}:{packet.duration}:{packet.size}:".encode())
        digest.update(bytes(packet))
        if stream.type == "video" and rotation is None:
            frames = packet.decode()
            rotation = int(getattr(frames[0], "rotation", 0) or 0) if frames else None
    return rotation


def _open(path, kind: str):
    import av

    return open_without_video_probe(Path(path)) if kind == AUDIO_KIND else av.open(str(path))  # frames decode


def stream_key(path: str | Path, kind: str, max_duration: float | None) -> str | None:
    """The digest of what the ``kind`` half (``mel``/``faces``) of ``path`` depends on; ``None`` where
    the file has no such stream or cannot be read (it is then prepared, and its status said, as usual)."""
    if kind not in (AUDIO_KIND, VIDEO_KIND):
        return None
    try:
        info = probe(path)
        span = used_span(info.duration, max_duration)
        trimmed = None if span == (0.0, info.duration) else span
        with _open(path, kind) as container:
            streams = container.streams.audio if kind == AUDIO_KIND else container.streams.video
            if not streams:
                return None
            stream = streams[0]
            digest = hashlib.sha1(repr([kind, _codec_params(stream), trimmed]).encode())
            extra = [info.audio_duration, info.container_us] if kind == AUDIO_KIND else [info.video_duration]
            rotation = _packets_digest(container, stream, digest)
            digest.update(repr([extra, rotation]).encode())
            return f"{kind}:{digest.hexdigest()}"
    except Exception:  # noqa: BLE001 - an unreadable file just shares nothing
        return None


def stream_keys(path: str | Path, max_duration: float | None) -> dict[str, str]:
    """``{kind: digest}`` of each half a file has; the sync half's is its video stream's (see above)."""
    keys = {kind: stream_key(path, kind, max_duration) for kind in (AUDIO_KIND, VIDEO_KIND)}
    keys[SYNC_KIND] = keys[VIDEO_KIND] and f"{SYNC_KIND}:{keys[VIDEO_KIND]}"
    return {k: v for k, v in keys.items() if v is not None}
