import numpy as np
import pytest

from tasks import contract as c
from tasks.validate import validate_drop
from tasks.warcov import import_warcov


def _files(tmp_path, n_img=30, n_txt=30, n_y=30, fmt="npy"):
    rng = np.random.default_rng(0)
    arrays = {"multimodal_img_noft_pca": rng.standard_normal((n_img, 512)).astype(np.float32),
              "multimodal_txt_noft_pca": rng.standard_normal((n_txt, 768)).astype(np.float32),
              "multimodal_y_noft": (rng.random((n_y, 50)) < 0.1).astype(np.float32)}
    paths = []
    for name, a in arrays.items():
        p = tmp_path / f"{name}.{fmt}"
        if fmt == "npy":
            np.save(p, a)
        else:
            np.savetxt(p, a, delimiter=",", header=",".join(f"c{i}" for i in range(a.shape[1])), comments="")
        paths.append(p)
    return paths, arrays


@pytest.mark.parametrize("fmt", ["npy", "csv"])
def test_import_gives_a_valid_drop(tmp_path, fmt):
    (img, txt, y), arrays = _files(tmp_path, fmt=fmt)
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"tag_cluster_{i}" for i in range(50)))
    m = import_warcov(img, txt, y, tmp_path / "warcov", "warcov", names_file=names)
    assert m.rows == 30 and m.label_names[3] == "tag_cluster_3" and validate_drop(tmp_path / "warcov").ok
    d = c.open_drop(tmp_path / "warcov")
    np.testing.assert_allclose(d.img, arrays["multimodal_img_noft_pca"], rtol=1e-6)
    np.testing.assert_array_equal(d.labels, arrays["multimodal_y_noft"].astype(np.uint8))


def test_mismatched_row_counts_are_refused_by_default(tmp_path):
    (img, txt, y), _ = _files(tmp_path, n_img=28)
    with pytest.raises(c.ContractError, match="row counts differ .*28 rows.*--align truncate"):
        import_warcov(img, txt, y, tmp_path / "w", "w")
    assert not (tmp_path / "w").exists()


def test_truncate_is_explicit_and_says_what_it_drops(tmp_path, caplog):
    (img, txt, y), _ = _files(tmp_path, n_img=28, n_y=29)
    m = import_warcov(img, txt, y, tmp_path / "w", "w", align="truncate")
    assert m.rows == 28
    assert "keeping the first 28 rows" in caplog.text and "2 from" in caplog.text and "1 from" in caplog.text
