import pytest

from mmdf.files import atomic_write


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "sub" / "out.csv"
    with atomic_write(target) as tmp:
        tmp.write_text("first")
        assert not target.exists()  # nothing visible until the block completes
    assert target.read_text() == "first"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "first"
    assert [p.name for p in target.parent.iterdir()] == ["out.csv"]  # no temporary left behind
