"""The README is the user's manual: it must name every setting there is."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from config.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def env_names() -> list[str]:
    names = []
    for group, field in Settings.model_fields.items():
        model = field.annotation
        assert isinstance(model, type)
        assert issubclass(model, BaseModel)
        names.extend(f"JOBWIRE_{group.upper()}__{name.upper()}" for name in model.model_fields)
    return names


def test_every_setting_is_documented_in_the_readme() -> None:
    missing = [name for name in env_names() if f"`{name}`" not in README]
    assert not missing, f"document these in README.md's Configuration table: {missing}"


def test_the_readme_names_the_two_commands_first() -> None:
    assert README.index("make run") < README.index("## Running jobwire")
    assert README.index("make test") < README.index("## Running jobwire")
