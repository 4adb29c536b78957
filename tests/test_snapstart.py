"""SnapStart: the template switch and the runtime hooks, called as Lambda calls them."""

import importlib
import os
import random
import subprocess
import sys
from typing import Any

import pytest
import snapshot_restore_py

from app import dependencies
from devtools.template import REPO_ROOT, load_template


def test_hooks_are_registered_and_refresh_the_environment(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered: dict[str, str] = {}

    def recorder(hook: str) -> Any:
        def register(func: Any, *args: Any, **kwargs: Any) -> Any:
            registered[hook] = func.__name__
            return func

        return register

    # The library's public registration functions, as the module calls them at import.
    monkeypatch.setattr(snapshot_restore_py, "register_before_snapshot", recorder("before_snapshot"))
    monkeypatch.setattr(snapshot_restore_py, "register_after_restore", recorder("after_restore"))
    from app import snapstart

    importlib.reload(snapstart)
    assert registered == {"before_snapshot": "prepare_snapshot", "after_restore": "refresh_after_restore"}

    snapstart.prepare_snapshot()
    assert dependencies.get_dynamodb_client.cache_info().currsize == 1  # the client is in the snapshot
    snapshotted_client = dependencies.get_dynamodb_client()
    dependencies.get_item_store()

    random.seed(1234)  # every environment restored from one snapshot would share this state
    shared = random.random()
    random.seed(1234)
    snapstart.refresh_after_restore()
    assert random.random() != shared
    assert dependencies.get_dynamodb_client.cache_info().currsize == 0
    assert dependencies.get_item_store.cache_info().currsize == 0
    assert dependencies.get_single_attempt_client.cache_info().currsize == 0  # its credentials too
    assert dependencies.get_botocore_session.cache_info().currsize == 0
    assert dependencies.get_dynamodb_client() is not snapshotted_client


def test_snapstart_is_a_template_parameter() -> None:
    template = load_template()
    assert template["Parameters"]["EnableSnapStart"]["Default"] == "false"
    function = template["Resources"]["ApiFunction"]["Properties"]
    assert function["AutoPublishAlias"] == "live"
    assert function["SnapStart"] == {
        "Fn::If": ["SnapStartEnabled", {"ApplyOn": "PublishedVersions"}, {"Ref": "AWS::NoValue"}]
    }


@pytest.mark.parametrize(("initialization", "loaded"), [("snap-start", True), ("on-demand", False)])
def test_hooks_load_only_for_snapstart_inits(initialization: str, loaded: bool) -> None:
    code = "import sys, app.main; print('app.snapstart' in sys.modules)"
    env = {
        **os.environ,
        "PYTHONPATH": "functions/api:layers/shared",
        "AWS_LAMBDA_INITIALIZATION_TYPE": initialization,
    }
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == str(loaded)


def test_collector_runs_again_once_the_app_is_built() -> None:
    code = "import gc, app.main; print(gc.isenabled(), gc.get_freeze_count() > 0)"
    env = {**os.environ, "PYTHONPATH": "functions/api:layers/shared"}
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["True", "True"]
