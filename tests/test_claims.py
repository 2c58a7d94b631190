"""The paper's claims as a spec lists them: parsed with their defaults, and bad claims refused in
one line before any run."""

from __future__ import annotations

import pytest

from grok_mlflow.findings.claims import parse_claims
from grok_mlflow.settings import SettingsError
from grok_mlflow.sweeps.spec import load_spec

Q = "grok/migration_onset_step"
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


