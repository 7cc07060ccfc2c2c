"""What a study with scene families measures on each family: movement, item maps, outputs."""

from __future__ import annotations

import pytest
from test_study_families import _families

from downsizenet_hub.study import preset
from downsizenet_hub.study.aggregate import estimate
from downsizenet_hub.study.families import Family, study_families
from downsizenet_hub.study.movement import WEIGHT, Movement, movement_table

pytestmark = pytest.mark.usefixtures("one_thread")

A, B_CLEAN = Family("A"), Family("B", "clean")


def test_the_families_are_the_pretrainings_then_the_transfers_and_none_without() -> None:
    assert study_families(_families()) == (A, B_CLEAN)
    assert [f.label for f in study_families(_families())] == ["family A", "family B (clean)"]
    assert study_families(preset("plateau")) == (A, Family("B"))
    assert study_families(preset("cpu")) == ()


def test_the_movement_table_has_a_column_per_family_and_none_without_families() -> None:
    row = Movement("downsizenet", "noisy", 0.3, 8, WEIGHT, (estimate([16.42]), estimate([16.47])))
    table = movement_table([row], [A, B_CLEAN])
    assert table.splitlines()[2] == (
        "| resizer | data | scale | pretraining | moved on family A | moved on family B (clean) "
        "| unit |"
    )  # after a line saying where each column was measured
    assert (
        "| downsizenet | noisy | x0.3 | 8 epochs | 16.42 (n=1) | 16.47 (n=1) | % of each" in table
    )
    alone = movement_table([Movement("downsizenet", "noisy", 0.3, 8, WEIGHT, (estimate([1.5]),))])
    assert alone.splitlines()[0] == (
        "| resizer | data | scale | pretraining | moved from its start | unit |"
    )  # as before scene families: the committed reports do not change
