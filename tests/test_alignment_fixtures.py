"""The pair parametrisation of the Q2 claims: the first model is the reference, one pair per other model."""
import pytest

from fixtures.alignment import model_pairs, split_pair


def test_pairs_reference_against_each_other_model():
    assert model_pairs(["gemma3-270m", "smollm2-135m"]) == ["gemma3-270m_vs_smollm2-135m"]
    assert model_pairs(["gpt2", "pythia-160m", "gpt-neo-125m"]) == ["gpt2_vs_pythia-160m", "gpt2_vs_gpt-neo-125m"]
    assert model_pairs(["smollm2-135m"]) == []
    assert split_pair("gpt2_vs_pythia-160m") == ("gpt2", "pythia-160m")
    with pytest.raises(ValueError, match="is not"):
        split_pair("gpt2")
