"""python -m loadtests.compare: each route's p95 loaded over unloaded, and its verdict."""

from __future__ import annotations

from pathlib import Path

from loadtests.compare import main, read

HEADER = "Type,Name,Request Count,Failure Count,95%\n"


def _run(folder: Path, rows: str) -> Path:
    folder.mkdir()
    (folder / "locust_stats.csv").write_text(HEADER + rows)
    return folder


def test_ratio_per_route_and_the_verdict(tmp_path: Path, capsys) -> None:
    base = _run(
        tmp_path / "a", "POST,/v1/samples,50,0,20\nPOST,/v1/x (429),3,0,1\n,Aggregated,53,0,20\n"
    )
    ok = _run(tmp_path / "b", "POST,/v1/samples,500,0,50\n,Aggregated,500,0,50\n")
    slow = _run(tmp_path / "c", "POST,/v1/samples,500,0,70\n,Aggregated,500,0,70\n")
    failing = _run(tmp_path / "d", "POST,/v1/samples,500,2,30\n,Aggregated,500,2,30\n")
    assert read(base) == {"/v1/samples": (50, 0, 20.0)}
    assert main([str(base), str(ok)]) == 0
    assert "2.50x" in capsys.readouterr().out
    assert main([str(base), str(slow)]) == 1  # 3.5x
    assert main([str(base), str(failing)]) == 1  # errors under load
