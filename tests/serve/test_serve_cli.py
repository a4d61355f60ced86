"""`rewardranker serve` start-up errors are one line naming the field, never a traceback."""

from __future__ import annotations

from typer.testing import CliRunner

from rewardranker.cli import app


def test_serve_without_a_generator_or_upstream_is_a_one_line_error(models):
    result = CliRunner().invoke(app, ["serve", "--model", str(models[1])])
    assert result.exit_code == 1 and "field 'generator'" in result.output and "Traceback" not in result.output


def test_serve_on_a_public_address_needs_an_api_key(models, monkeypatch):
    monkeypatch.delenv("REWARDRANKER_API_KEY", raising=False)
    result = CliRunner().invoke(app, ["serve", "--model", str(models[1]), "--generator", str(models[0]),
                                      "--host", "0.0.0.0"])
    assert result.exit_code == 1 and "field 'api_key'" in result.output


def test_serve_with_a_missing_reward_model_folder_says_so(models, tmp_path):
    result = CliRunner().invoke(app, ["serve", "--model", str(tmp_path / "nope"), "--generator", str(models[0])])
    assert result.exit_code == 1 and "not a reward-model folder" in result.output


def test_serve_ray_address_reaches_the_executor_config(models):
    """`--ray` makes /v1/execute and `tests` run on the cluster: the executor config carries the address."""
    from types import SimpleNamespace

    from rewardranker.serve import ServeConfig
    from rewardranker.serve.engine import Engine

    cfg = ServeConfig(model=models[1], generator=models[0], ray="auto")
    assert Engine.exec_config(SimpleNamespace(cfg=cfg)).ray == "auto"
    assert Engine.exec_config(SimpleNamespace(cfg=ServeConfig(model=models[1], generator=models[0]))).ray is None
