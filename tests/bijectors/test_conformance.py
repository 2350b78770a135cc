"""One conformance test, parametrized over every bijector that `tfp_realnvp.bijectors` exports.

In the manner of TFP's `bijector_properties_test.py`: the exported bijectors are found by
walking the namespace (every `tfb.Bijector` subclass in `tfp_realnvp.bijectors.__all__`),
every one needs a case in `CASES` or an entry, with its reason, in an exception table, and
a separate test fails, naming the bijector, when one has neither. The `Coupling` cases run
over every registered coupling transform (`COUPLING_TRANSFORMS`) with a conditioner built
from the transform's `params_per_unit`, so a new transform is checked without a case of its
own. The checks and the case builders are in tests/conformance.py; the known exceptions to
single checks are its tables (`ANY_EVENT_RANK`).
"""

import pytest
import tensorflow_probability as tfp

from tfp_realnvp import bijectors as rb

import conformance
from conformance import K, actnorm_case, affine_coupling_case, batch_norm_case
from conformance import conditional_chain_case, conv1x1_case, factor_out_case, glow_case
from conformance import logit_case, real_nvp_case, spline_coupling_case, split_prior_case
from conformance import scan_case, squeeze_case, transform_cases

# Exported bijectors that have no case of their own, with the reason and where they are
# checked instead. (None today: `ConditionalChain`, the bijector of every flow, has its own
# case too.)
NOT_STANDALONE: dict[str, str] = {}

EXCEPTION_TABLES = {"NOT_STANDALONE": NOT_STANDALONE,
                    "conformance.ANY_EVENT_RANK": conformance.ANY_EVENT_RANK}

CASES = [
    # Every registered transform in a `Coupling`: both masks and parities, an odd width, a
    # condition.
    *[case for transform in rb.COUPLING_TRANSFORMS for case in transform_cases(transform)],
    affine_coupling_case("channel", 1, (4, 4, 4), additive=True),
    affine_coupling_case("checkerboard", 1, (4, 4, 2), conditional_size=K),
    spline_coupling_case("channel", 1, (1, 1, 5)),  # A vector as a 1x1 image.
    spline_coupling_case("checkerboard", 1, (4, 4, 2), conditional_size=K),
    squeeze_case((4, 6, 2)),
    factor_out_case((4, 4, 4)),
    batch_norm_case((4, 4, 3)),
    logit_case((4, 4, 2)),
    actnorm_case((4, 3, 3)),
    conv1x1_case((4, 3, 4)),
    conv1x1_case((3, 4, 4), lu=False),
    split_prior_case((4, 4, 4)),
    split_prior_case((4, 4, 3), conditional_size=K),
    conditional_chain_case((4, 4, 2)),
    # Whole flows, whose bijector is a `ConditionalChain` of the bijectors above.
    real_nvp_case((8, 8, 1), 2),
    real_nvp_case((8, 8, 1), 3),
    real_nvp_case((16, 16, 3), 2),
    real_nvp_case((16, 16, 3), 3),
    real_nvp_case((8, 8, 2), 2, batch_norm=True),
    real_nvp_case((8, 8, 1), 2, coupling="spline"),
    real_nvp_case((8, 8, 1), 2, batch_norm=True, condition="vectors"),
    real_nvp_case((8, 8, 1), 3, condition="vectors"),
    real_nvp_case((8, 8, 1), 2, condition="labels"),
    scan_case((4, 4, 4), 3),
    scan_case((4, 4, 2), 2, conditional_size=K),
    glow_case((8, 8, 1), 2, 2),
    glow_case((8, 8, 1), 2, 2, scan=False),
    glow_case((4, 4, 3), 1, 1, coupling_network="resnet"),
    glow_case((8, 8, 1), 2, 1, condition="labels"),
    glow_case((8, 8, 1), 2, 2, coupling="spline"),
    glow_case((4, 4, 3), 1, 1, coupling_network="resnet", coupling="spline",
              condition="vectors"),
]


# Checks of single cases that take over ~20 s (times on 2 shared cores), run with `-m slow`:
# XLA compiling the largest multi-scale flows. Smaller flows of the same kinds (Real NVP with
# and without conditions, Glow with affine and spline couplings) keep the check in the default
# run.
SLOW = {
    ("realnvp-16x16x3-3scales", "eager_function_and_xla_agree"): "55-70 s",
    ("realnvp-16x16x3-2scales", "eager_function_and_xla_agree"): "25-40 s",
    ("realnvp-8x8x1-3scales", "eager_function_and_xla_agree"): "30-40 s",
    ("realnvp-8x8x2-2scales-batchnorm", "eager_function_and_xla_agree"): "30-45 s",
    ("realnvp-8x8x1-2scales-spline", "eager_function_and_xla_agree"): "20-30 s",
    ("conditional-vectors-realnvp-8x8x1-3scales", "eager_function_and_xla_agree"): "22-40 s",
    ("conditional-vectors-realnvp-8x8x1-2scales-batchnorm", "eager_function_and_xla_agree"):
        "20-31 s",
    # The float64 Jacobians and shape checks of the 3-scale flows (2-scale flows of the same
    # kinds keep them in the default run).
    ("realnvp-16x16x3-3scales", "log_det_matches_autodiff_jacobian"): "20 s",
    ("realnvp-16x16x3-3scales", "shapes"): "15 s",
    ("realnvp-8x8x1-3scales", "log_det_matches_autodiff_jacobian"): "21 s",
    ("conditional-vectors-realnvp-8x8x1-3scales", "log_det_matches_autodiff_jacobian"): "25 s",
    ("conditional-vectors-realnvp-8x8x1-3scales", "shapes"): "25 s",
}


def check_name(check):
  return check.__name__.removeprefix("check_")


@pytest.mark.parametrize("case, check", [
    pytest.param(case, check, id=f"{case.name}-{check_name(check)}",
                 marks=[pytest.mark.slow] if (case.name, check_name(check)) in SLOW else [])
    for case in CASES for check in conformance.CHECKS])
def test_conformance(case, check):
  check(case)


def exported_bijectors():
  """`{name: class}` of every `tfb.Bijector` subclass in `tfp_realnvp.bijectors.__all__`."""
  exported = {name: getattr(rb, name) for name in rb.__all__}
  return {name: value for name, value in exported.items()
          if isinstance(value, type) and issubclass(value, tfp.bijectors.Bijector)}


def without_case(exported, cases, not_standalone):
  """The names in `exported` that no case builds and `not_standalone` does not list."""
  covered = {case.bijector.__name__ for case in cases}
  return sorted(set(exported) - covered - set(not_standalone))


def test_every_exported_bijector_has_a_case_or_a_listed_reason():
  missing = without_case(exported_bijectors(), CASES, NOT_STANDALONE)
  assert not missing, (
      f"tfp_realnvp.bijectors exports {', '.join(missing)} without a conformance case: add one "
      f"to CASES in tests/bijectors/test_conformance.py (or list it, with the reason, in "
      f"NOT_STANDALONE).")


def test_a_new_exported_bijector_without_a_case_is_named(monkeypatch):
  class Shift(tfp.bijectors.Shift):
    pass

  monkeypatch.setattr(rb, "Shift", Shift, raising=False)
  monkeypatch.setattr(rb, "__all__", [*rb.__all__, "Shift", "COUPLING_TRANSFORMS"])
  assert without_case(exported_bijectors(), CASES, NOT_STANDALONE) == ["Shift"]
  assert without_case(exported_bijectors(), CASES, {"Shift": "a test"}) == []


def test_the_exception_tables_name_exported_bijectors_with_reasons():
  exported = exported_bijectors()
  covered = {case.bijector.__name__ for case in CASES}
  for table_name, table in EXCEPTION_TABLES.items():
    for name, reason in table.items():
      assert name in exported, f"{table_name} lists {name}, which is not an exported bijector"
      assert isinstance(reason, str) and reason, f"{table_name}[{name!r}] gives no reason"
  stale = sorted(set(NOT_STANDALONE) & covered)
  assert not stale, f"NOT_STANDALONE lists {stale}, which have cases now: remove them"
  unused = sorted(set(conformance.ANY_EVENT_RANK) - covered)
  assert not unused, f"ANY_EVENT_RANK lists {unused}, which have no case"


def test_the_slow_checks_name_cases_and_checks():
  pairs = {(case.name, check_name(check)) for case in CASES for check in conformance.CHECKS}
  assert set(SLOW) <= pairs, sorted(set(SLOW) - pairs)


def test_every_registered_transform_has_coupling_cases():
  for transform in rb.COUPLING_TRANSFORMS:
    names = [case.name for case in CASES if case.bijector is rb.Coupling]
    assert sum(f"coupling-{transform}-" in name for name in names) == len(
        transform_cases(transform)), transform
