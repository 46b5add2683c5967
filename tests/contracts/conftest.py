"""Hypothesis profiles for the stateful property suite (tests/contracts/test_properties.py).

HYPOTHESIS_PROFILE selects one (the Makefile sets it):
  quick     `make test`: few examples, derandomized, so CI is fast and reproducible;
  audit     `make test-audit`: many more, longer examples, random seeds;
  mutation  `make mutation`: quick's examples without shrinking, run against each planted bug.
Every profile: no deadline (each step is a chain transaction), and the function-scoped-fixture
health check off (ape's fixtures trip it; the machines restore their own chain snapshot).
"""

import os

from hypothesis import HealthCheck, Phase, settings

_COMMON = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
    print_blob=True,
)

_QUICK = dict(max_examples=40, stateful_step_count=25, derandomize=True, database=None)
settings.register_profile("quick", **_QUICK, **_COMMON)
# The same examples as quick (what `make test` proves is what the mutants face); a killed mutant
# needs one failing example, not a minimal one: no shrinking.
settings.register_profile("mutation", **_QUICK, phases=[Phase.explicit, Phase.generate], **_COMMON)
settings.register_profile("audit", max_examples=500, stateful_step_count=50, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))
