"""The paper's claims held against a sweep's trials (issue #25): the verdict rules on synthetic
trial tables, and bad claims refused in one line."""

from __future__ import annotations

import math

import pytest

from grok_mlflow.claims import Claim, evaluate, parse_claims, spearman
from grok_mlflow.settings import SettingsError
from grok_mlflow.sweep import load_spec

Q = "grok/migration_onset_step"
WIDTHS = [16, 64, 256, 1024]


def table(values, seeds=1, key=Q):
    """Trials over WIDTHS: values[i] (None = phase not seen) at every seed of width i."""
    return [({"width": w, "seed": s}, {} if v is None else {key: float(v)})
            for w, v in zip(WIDTHS, values) for s in range(seeds)]


def verdict(trend, values, **claim):
    c = Claim(text="t", quantity=claim.pop("quantity", Q), trend=trend, versus="width", **claim)
    return evaluate(c, table(values), WIDTHS)


def test_spearman_is_exact_on_known_cases():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4, 5], [1, 3, 2, 4, 5]) == pytest.approx(0.9)   # one swap
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))


@pytest.mark.parametrize("trend, values, status", [
    ("decreasing", [900, 500, 300, 200], "supported"),
    ("decreasing", [200, 300, 500, 900], "contradicted"),
    ("decreasing", [900, 300, 600, 500], "inconclusive"),           # rho = -0.4
    ("decreasing", [900, None, None, 200], "inconclusive"),         # seen in 2 of 4
    ("increasing", [1, 2, 3, 4], "supported"),
    ("increasing", [4, 3, 2, 1], "contradicted"),
    ("increasing", [5, 5, 5, 5], "contradicted"),                   # no rise at all
    ("constant", [100, 105, 95, 102], "supported"),
    ("constant", [100, 200, 400, 800], "contradicted"),
    ("constant", [100, 300, 90, 250], "inconclusive"),
    ("rise_then_fall", [10, 30, 25, 5], "supported"),
    ("rise_then_fall", [10, 20, 30, 40], "contradicted"),
    ("rise_then_fall", [30, 10, 25, 5], "inconclusive"),            # peak at an end, not monotone
    ("absent", [None, None, None, None], "supported"),
    ("absent", [1, 2, 3, None], "contradicted"),
    ("absent", [1, None, None, None], "inconclusive"),
    ("present", [1, 2, 3, 4], "supported"),
    ("present", [None, None, None, 4], "contradicted"),
    ("present", [1, 2, None, 4], "inconclusive"),
])
def test_each_trend_is_supported_contradicted_or_inconclusive(trend, values, status):
    assert verdict(trend, values).status == status


def test_seeds_are_averaged_and_the_reason_gives_the_numbers():
    trials = table([900, 500, 300, 200], seeds=2)
    trials[1] = ({"width": 16, "seed": 1}, {Q: 700.0})             # seeds 900 and 700: mean 800
    v = evaluate(Claim("Width hastens migration", Q, "decreasing", "width"), trials, WIDTHS)
    assert v.status == "supported" and v.rho == pytest.approx(-1.0)
    assert v.points == ((16, 800.0), (64, 500.0), (256, 300.0), (1024, 200.0))
    assert v.reason == "Spearman rho = -1.00 over 4 values"
    missing = verdict("decreasing", [900, 500, None, 200])
    assert missing.status == "supported" and "(1 of 4 trials without it)" in missing.reason
    few = verdict("decreasing", [900, None, None, 200])
    assert few.reason.startswith(f"{Q} not seen in 2 of 4 trials")


def test_where_selects_the_trials_an_absent_claim_is_about():
    trials = [({"batchnorm": False, "seed": 0}, {Q: 500.0}), ({"batchnorm": True, "seed": 0}, {}),
              ({"batchnorm": False, "seed": 1}, {Q: 400.0}), ({"batchnorm": True, "seed": 1}, {})]
    claim = Claim("BN removes migration", Q, "absent", "batchnorm", where={"batchnorm": True})
    v = evaluate(claim, trials, [False, True])
    assert v.status == "supported" and v.points == ((False, 1.0), (True, 0.0))
    assert evaluate(Claim("x", Q, "absent", "batchnorm"), trials, [False, True]).status \
        == "inconclusive"                                            # all trials: 2 of 4 have it


GRID = {"width": [16, 64], "seed": [0, 1]}


@pytest.mark.parametrize("claims, message", [
    ([{"text": "a", "quantity": "grok/onset", "trend": "decreasing"}],
     "claims[1] ('a'): unknown quantity 'grok/onset'"),
    ([{"text": "b", "quantity": Q, "trend": "down"}], "claims[1] ('b'): unknown trend 'down'"),
    ([{"text": "c", "quantity": Q, "trend": "decreasing", "versus": "depth"}],
     "claims[1] ('c'): versus 'depth' is not swept; swept: width, seed"),
    ([{"text": "d", "quantity": Q}], "claims[1] ('d'): needs 'trend:'"),
    ([{"text": "e", "quantity": Q, "trend": "absent", "where": {"width": 32}}],
     "claims[1] ('e'): where must map swept settings to swept values"),
    ([{"text": "f", "quantity": Q, "trend": "constant", "tolerance": -1}],
     "claims[1] ('f'): tolerance must be a number >= 0"),
    ("width hastens", "claims: must be a list"),
])
def test_bad_claims_are_refused_in_one_line(claims, message):
    with pytest.raises(SettingsError) as info:
        parse_claims(claims, GRID)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_claims_parse_with_defaults_and_other_quantities():
    claims = parse_claims([{"text": "t", "quantity": "lc_r0.05/train", "trend": "increasing"},
                           {"text": "u", "quantity": "adv/acc/eps_0.1", "trend": "present",
                            "versus": "seed", "figure": 5}], GRID)
    assert claims[0].versus == "width" and claims[0].tolerance == 0.25
    assert claims[1].versus == "seed" and claims[1].figure == "5"


def test_a_spec_with_a_bad_claim_fails_before_ray_with_exit_2(tmp_path, capsys):
    from grok_mlflow.cli import main

    spec = tmp_path / "spec.yaml"
    spec.write_text("grid: {width: [8, 16]}\nclaims:\n  - {text: wide, quantity: grok/x, "
                    "trend: decreasing}\n")
    assert main(["sweep", str(spec)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"grok-mlflow: error: spec {spec}: claims[1] ('wide'): unknown quantity "
                   f"'grok/x'; valid: " + err.split("valid: ", 1)[1])
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "ray_results").exists()
    with pytest.raises(SettingsError):
        load_spec(str(spec))
