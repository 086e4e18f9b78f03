"""The sync branch: does the mouth move with the voice? A two-stream network learnt on real clips only.

Its feature is the cached sync window (``sync_file``, :mod:`mmdf.prepare.mouth`:
grey mouth crops and a log-mel row per video frame). Each fold trains
:class:`mmdf.train.sync_net.SyncNet` self-supervised on that fold's *real*
training clips: an item is a window of ``window`` frames with its own audio
(in sync, label 0) or with its audio shifted by at least ``min_shift`` frames
(out of sync, label 1), as SyncNet learnt. Audio taken from another clip
(``other_clip``, off by default) can be told from the clip's own by whose voice
it is, not by when the mouth moves: with 30% of such items, the demo's
`fake_sync` AUC ranged over 0.83-0.99 between training seeds (the net matched
voices to faces, and a sync fake keeps its speaker's voice); with none,
0.985-0.993. No fake label is learnt
from, so it learns what real speech looks like and flags any clip that does
not (lip-sync and dubbed fakes), as SpeechForensics and the FFDV teams' audio
offsets did. Scoring a clip reads it as it is: the branch's probability is
the mean out-of-sync logit over ``eval_windows`` windows. The fold's epoch is
still chosen by held-out AUC, as for every branch. Section ``train.sync``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mmdf.errors import MmdfError
from mmdf.prepare.config import SyncConfig
from mmdf.prepare.store import read_sync
from mmdf.stats.sync import MAX_LAG, lag_correlation, mouth_signals
from mmdf.train.branches.base import Segments, targets_of
from mmdf.train.branches.torch_branch import TorchBranch


@dataclass
class SyncModelConfig:
    """The network (:class:`mmdf.train.sync_net.SyncNet`); not a timm model, so no pretrained weights."""

    name: str = "syncnet"
    width: int = 16  # channels of the first mouth layer; the rest scale with it
    pool: int = 2  # the mouth crops are averaged down by this factor first (48 -> 24 px)
    drop_rate: float = 0.1
    pretrained: bool = False  # kept for the trainer's checks: there are no pretrained weights


@dataclass
class SyncBranchConfig:
    model: SyncModelConfig = field(default_factory=SyncModelConfig)
    window: int = 25  # frames per item (1 s at 25 fps); a clip's sync window holds at least prepare.sync.min_frames
    pairs_per_clip: int = 8  # training items per real clip and epoch, each a random window, half out of sync
    min_shift: int = 8  # frames an out-of-sync item's audio is moved by at least (0.32 s at 25 fps)
    other_clip: float = 0.0  # share of out-of-sync items whose audio comes from another clip (see above)
    eval_windows: int = 4  # windows spread over the clip, scored as they are, mean logit
    cache_mb: int = 512  # clips' windows kept in memory per dataset (and loader worker) instead of re-read

    def __post_init__(self) -> None:
        if self.window < 3:
            raise ValueError(f"train.sync.window must be at least 3 frames, got {self.window}")


def read_window(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(mouth (T, S*S) uint8, log-mel (T, n_mels) standardised per band) of a cached sync window."""
    z = read_sync(path)
    mouth, mel = z["mouth"], z["mel"].astype(np.float32)
    mel = (mel - mel.mean(axis=0)) / (mel.std(axis=0) + 1e-3)
    return mouth.reshape(len(mouth), -1), mel


class SyncDataset:
    """Training: random in/out-of-sync windows of real clips; else ``eval_windows`` windows per clip as they are."""

    def __init__(self, files: list[str], targets: np.ndarray, cfg: SyncBranchConfig, train: bool):
        self.files, self.targets, self.cfg, self.train = list(files), np.asarray(targets, np.float32), cfg, train
        per_clip = cfg.pairs_per_clip if train else cfg.eval_windows
        self.item_clip = np.repeat(np.arange(len(self.files)), per_clip)
        self.item_slot = np.tile(np.arange(per_clip), len(self.files))
        # each clip is read for many items an epoch (and as others' audio): keep what was read, up to a budget
        self._kept: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._room = cfg.cache_mb * 2**20

    def window(self, clip: int) -> tuple[np.ndarray, np.ndarray]:
        """(mouth (T, S*S) float32 in 0-1, standardised log-mel) of clip ``clip``; its uint8 crops and mel are
        kept in memory while the budget lasts."""
        kept = self._kept.get(clip)
        if kept is None:
            kept = read_window(self.files[clip])
            size = kept[0].nbytes + kept[1].nbytes
            if size <= self._room:
                self._kept[clip], self._room = kept, self._room - size
        return kept[0].astype(np.float32) / 255.0, kept[1]

    def __len__(self) -> int:
        return len(self.item_clip)

    def __getitem__(self, i: int):
        import torch  # deferred: this module loads with every config, torch only to make items

        clip = int(self.item_clip[i])
        mouth, mel = self.window(clip)
        n = self.cfg.window
        if len(mouth) < n:
            raise MmdfError(f"{self.files[clip]}: {len(mouth)} frames, fewer than train.sync.window={n}; "
                            "lower it or raise prepare.sync.min_frames")
        if not self.train:
            start = int(np.linspace(0, len(mouth) - n, self.cfg.eval_windows).round()[self.item_slot[i]])
            x = np.concatenate([mouth[start:start + n], mel[start:start + n]], axis=1)
            return torch.from_numpy(x), torch.tensor(self.targets[clip]), clip
        start = int(torch.randint(0, len(mouth) - n + 1, ()))
        label = float(torch.rand(()) < 0.5)
        audio = mel[start:start + n] if not label else self._other_audio(clip, mel, start)
        x = np.concatenate([mouth[start:start + n], audio], axis=1)
        return torch.from_numpy(x), torch.tensor(label), clip

    def _other_audio(self, clip: int, mel: np.ndarray, start: int) -> np.ndarray:
        """Audio of ``window`` frames that does not belong with the mouth at ``start``."""
        import torch  # deferred: this module loads with every config, torch only to make items

        n, cfg = self.cfg.window, self.cfg
        shifts = [s for s in range(len(mel) - n + 1) if abs(s - start) >= cfg.min_shift]
        if shifts and (len(self.files) < 2 or float(torch.rand(())) >= cfg.other_clip):
            s = shifts[int(torch.randint(0, len(shifts), ()))]
            return mel[s:s + n]
        other = (clip + 1 + int(torch.randint(0, max(1, len(self.files) - 1), ()))) % len(self.files)
        _, theirs = self.window(other)
        s = int(torch.randint(0, max(1, len(theirs) - n + 1), ()))
        return np.pad(theirs[s:s + n], ((0, max(0, n - len(theirs[s:s + n]))), (0, 0)))


class SyncBranch(TorchBranch):
    name = "sync"
    describe = "mouth-voice synchrony (learnt on real clips)"
    status_col = "sync_status"
    file_col = "sync_file"
    prepare_keys = ("sync", "faces")
    config_cls = SyncBranchConfig
    modality = "sync"
    self_supervised = True  # learns from real clips only: a fold needs real clips, not fakes

    def create_model(self, model_cfg: SyncModelConfig, prepare=None):
        from mmdf.train.sync_net import SyncNet  # deferred: torch (this module loads with every config)

        sync = prepare.sync if prepare is not None else SyncConfig()
        return SyncNet(sync.mouth_size, sync.n_mels, model_cfg.width, model_cfg.drop_rate, model_cfg.pool)

    def training_rows(self, fit: pd.DataFrame) -> pd.DataFrame:
        return fit[pd.to_numeric(fit["target"], errors="coerce") == 0]

    def normalization(self, model, section, fit_rows):
        return [0.0], [1.0]  # the dataset scales the mouth to 0-1 and standardises each clip's mel bands

    def segments(self, trained, row: pd.Series) -> Segments | None:
        """The out-of-sync probability of windows of ``window`` frames every fifth of a window over the sync
        window, as the clip is; the curve: how the mouth's opening correlates with the voice's loudness
        when the voice is moved by each lag (a real talking face peaks near 0)."""
        section = self.section(trained.cfg.train)
        z = read_sync(row[self.file_col])  # the mouth crops decoded, whichever way the cache stores them
        times, fps, mouth, envelope = z["times"], float(z["fps"]), z["mouth"], z["envelope"]
        n = section.window
        if len(times) < n:
            return None
        k = (len(times) - n) // max(1, n // 5) + 1
        windows = dataclasses.replace(section, eval_windows=k)
        rows = pd.DataFrame([row])
        probs = trained.item_probs(lambda ckpt: self.dataset(rows, windows, ckpt["mean"], ckpt["std"], False))
        starts = np.linspace(0, len(times) - n, k).round().astype(int)
        opening = mouth_signals(mouth)[0]
        curve = np.abs(lag_correlation(opening, envelope.astype(np.float64)))
        lags = np.arange(-MAX_LAG, MAX_LAG + 1) / fps
        return Segments(times[starts], times[starts + n - 1] + 1 / fps, probs,
                        how=f"windows of {n} frames every {max(1, n // 5)} frames scored by the sync network "
                            "(mean of the fold models' out-of-sync probabilities)",
                        curve=(lags, curve, "seconds the voice lags the mouth: |correlation| of mouth opening "
                                             "with voice loudness (red: the best lag)"))

    def dataset(self, rows: pd.DataFrame, section: SyncBranchConfig, mean, std, train: bool) -> SyncDataset:
        return SyncDataset(rows[self.file_col].astype(str).tolist(), targets_of(rows), section, train)


BRANCH = SyncBranch()
