"""Finding 3 (issue 15): paths built from raw model names can never leave results/."""
import os

import pytest

from emocheck.errors import ConfigError
from emocheck.patching.experiment import out_dir
from emocheck.profiles import get_profile, results_dir, safe_part


@pytest.mark.parametrize("name", ["/abs/path/to/model", "org/../../../x", "..", ".", "a/./b", "..\\..\\win",
                                  "~/models/m", "", " ", "org/name", "x" * 300])
def test_every_writer_path_stays_inside_results(results_tmp, name):
    profile = get_profile("smoke")
    root = results_tmp.resolve()
    for path in (results_dir(profile, "patching", "residual", name, "sweep"), out_dir(profile, name, "sweep"),
                 results_dir(name), results_dir(profile, name)):
        assert root in path.resolve().parents
        assert path.resolve().relative_to(root).parts[0] in (profile.name, safe_part(name))
    # nothing was created beside or above the results folder
    assert sorted(os.listdir(results_tmp.parent)) == ["results"]


def test_safe_names_keep_their_folder_and_rewritten_ones_do_not_collide(results_tmp):
    assert safe_part("smollm2-135m") == "smollm2-135m" and safe_part("Qwen--Qwen3-8B") == "Qwen--Qwen3-8B"
    assert results_dir("ci", "activations", "gemma3-270m") == results_tmp.resolve() / "ci" / "activations" / "gemma3-270m"
    assert safe_part("org/x") != safe_part("org/../x") != safe_part("org--x")
    assert "/" not in safe_part("/a/b") and not safe_part(".hidden").startswith(".")


def test_a_symlink_placed_inside_results_is_followed(results_tmp, tmp_path):
    """Sharing a cache by linking results/ci/activations to another checkout's is deliberate."""
    (results_tmp / "ci").mkdir(parents=True)
    shared = tmp_path / "other-checkout-activations"
    shared.mkdir()
    os.symlink(shared, results_tmp / "ci" / "activations")
    path = results_dir("ci", "activations", "smollm2-135m")
    assert path == results_tmp.resolve() / "ci" / "activations" / "smollm2-135m"
    assert (shared / "smollm2-135m").is_dir()


def test_a_file_in_the_way_is_one_clear_error(results_tmp):
    results_tmp.mkdir(parents=True)
    (results_tmp / "ci").write_text("not a folder")
    with pytest.raises(ConfigError, match="--emocheck-results"):
        results_dir("ci", "statistics")
