"""Sizes and overrides that cut the demo configs to seconds for tests."""

# The demo configs cut to seconds: tiny models, one epoch, few frames (tests compose the real
# configs of configs/demo/ and only shrink them).
DEMO_SHRINK = [
    "folds.n_splits=2", "prepare.workers=1", "prepare.progress=false", "prepare.faces.num_frames=3",
    "train.epochs=1", "train.num_workers=0", "train.progress=false", "train.batch_size=16",
    "train.audio.model.name=test_efficientnet", "train.audio.input_size=[32,32]",
    "train.visual.model.name=test_efficientnet", "train.visual.input_size=32",
    "train.sync.pairs_per_clip=4",
    "stack.lightgbm.min_child_samples=2",
]
TINY_DEMO_SIZES = {"n_train": 24, "n_val": 12, "n_test": 8}


