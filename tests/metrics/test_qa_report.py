"""QA report pieces: montage layout, box plot and index page."""

from __future__ import annotations

import numpy as np
import pytest

from synthct.metrics import report


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_montage_columns_and_slices(porcine, tmp_path):
    ct, mr, mask = porcine["ct"], porcine["mr"], porcine["mask"]
    sct = np.roll(ct, 2, axis=1)
    with_input = report.save_montage(
        tmp_path / "a.png", ct=ct, sct=sct, spacing_zyx=(2.5, 1.0, 1.0), mask=mask, input_image=mr, title="case"
    )
    without = report.save_montage(tmp_path / "sub" / "b.png", ct=ct, sct=sct, spacing_zyx=(2.5, 1.0, 1.0))
    (w4, h4), (w3, h3) = _png_size(with_input), _png_size(without)
    assert w4 > w3 and h4 == h3  # one more column (the input)
    bbox_centre = tuple(int(i.min() + i.max()) // 2 for i in np.nonzero(mask))
    assert report._centre(mask > 0, ct.shape) == bbox_centre == (19, 94, 73)
    assert report._centre(None, ct.shape) == (20, 93, 73)
    with pytest.raises(ValueError, match="3-D of one shape"):
        report.save_montage(tmp_path / "c.png", ct=ct, sct=sct[:-1], spacing_zyx=(2.5, 1.0, 1.0))


def test_boxplot_and_index(tmp_path):
    box = report.save_region_boxplot(tmp_path / "box.png", {"HN": [50.0, 60.0, float("inf")], "AB": [70.0]})
    assert _png_size(box)[0] > 100
    rows = [
        {"case_id": "1HNA001", "region": "HN", "mae": 50.0, "psnr": float("inf")},
        {"case_id": "<x>", "region": "unknown", "mae": 60.0, "psnr": 30.0},
    ]
    index = report.write_index(
        tmp_path / "index.html",
        results=rows,
        aggregates={"mae": {"mean": 55.0, "count": 2}},
        montages={"1HNA001": "qa/1HNA001.png"},
        boxplot="box.png",
        notes=["bone Dice & no weights"],
    )
    text = index.read_text()
    assert '<img class="montage" src="qa/1HNA001.png"' in text
    assert "&lt;x&gt;" in text and "<x>" not in text  # escaped
    assert "bone Dice &amp; no weights" in text
    assert "<td>inf</td>" in text and "<td>55</td>" in text
