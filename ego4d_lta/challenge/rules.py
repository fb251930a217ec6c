"""The Ego4D LTA challenge's fixed numbers and file names (design §1, §4)."""

NUM_OBSERVED = 8
"""Observed action segments per window (EGO4D/forecasting#30)."""

Z = 20
"""Future actions to predict per window."""

K = 5
"""Candidate sequences per window; the score takes the best of them."""

SPLIT_FILES = {
    "train": "fho_lta_train.json",
    "val": "fho_lta_val.json",
    "test": "fho_lta_test_unannotated.json",
}
TAXONOMY_FILE = "fho_lta_taxonomy.json"
SCENARIOS_FILE = "scenarios_taxonomy.json"
"""Optional: Ego4D scenario names as `{"id": name}` (not in the LTA download; the CLIP prompts use it)."""

EVALAI_CHALLENGE_ID = 1598

PREDICTED_HEADS = ("verb", "noun")
"""What a submission holds per window (the metric also scores their pairs, the `action`)."""
