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


def test_temporary_names_are_recognisable(tmp_path):
    import os

    from mmdf.files import TEMP_SUFFIX, is_stale_temp, temporary_name

    tmp = temporary_name(tmp_path / "out.csv")
    assert tmp.parent == tmp_path and tmp.name.startswith(".out.csv.") and tmp.name.endswith(TEMP_SUFFIX)
    assert str(os.getpid()) in tmp.name
    tmp.write_text("x")
    assert not is_stale_temp(tmp), "this process is alive: its temporary file is in use"


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/fd"), reason="needs /proc to name fsynced files")
def test_atomic_write_fsyncs_the_file_and_its_folder(tmp_path, monkeypatch):
    import os

    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    target = tmp_path / "sub" / "out.csv"
    with atomic_write(target) as tmp:
        tmp.write_text("data")
    assert synced == [str(tmp), str(target.parent)], "the data before the rename, the folder after it"


def test_remove_stale_temps_keeps_what_live_writers_hold(tmp_path):
    import os
    import subprocess
    import sys
    import time

    from mmdf.files import host_tag, remove_stale_temps

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout)
    here, other = host_tag(), "0" * 6 if host_tag() != "000000" else "111111"
    (tmp_path / "deep" / "er").mkdir(parents=True)
    files = {
        f"deep/er/.a.npy.{dead}-{here}.mmdf-tmp": False,  # killed writer, this host: removed
        f".b.npy.{os.getpid()}-{here}.mmdf-tmp": True,  # a live writer (this process): kept
        f".c.npy.{dead}-{other}.mmdf-tmp": True,  # another host, just written: kept
        f".d.npy.{dead}-{other}.mmdf-tmp": False,  # another host, idle for two hours: removed
        f".e.npy.tmp{dead}": False,  # the name earlier versions used: removed
        "f.npy": True, ".hidden": True,  # not temporary files
    }
    for name in files:
        (tmp_path / name).write_text("x")
    old = time.time() - 7200
    os.utime(tmp_path / f".d.npy.{dead}-{other}.mmdf-tmp", (old, old))
    removed = remove_stale_temps(tmp_path)
    assert {p.relative_to(tmp_path).as_posix() for p in removed} == {n for n, keep in files.items() if not keep}
    assert all((tmp_path / n).exists() == keep for n, keep in files.items())
