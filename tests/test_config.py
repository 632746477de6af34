"""Settings layering (defaults < config file < FACETAGS_* env < flags), validation, and the CLI."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
import pytest

from facetags import cli as cli_mod
from facetags.config import Settings, config_file, load_settings
from facetags.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No FACETAGS_* from the caller; user dirs under tmp_path."""
    for name in list(os.environ):
        if name.startswith("FACETAGS_"):
            monkeypatch.delenv(name)
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def write_config(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "facetags.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("FACETAGS_CONFIG", str(path))
    return path


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings == Settings()
    assert settings.library == tmp_path / "xdg_data_home" / "facetags" / "library.db"
    assert settings.detect_max_side == 1280 and settings.min_face == 40
    assert settings.score_threshold == 0.9
    assert config_file() == tmp_path / "xdg_config_home" / "facetags" / "config.toml"


def test_default_config_file_location_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "xdg_config_home" / "facetags"
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text("min_face = 33\n", encoding="utf-8")
    assert load_settings().min_face == 33


def test_config_file_overrides_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(
        tmp_path,
        'library = "~/photos/faces.db"\nmin_face = 44\nscore_threshold = 0.8\n'
        'detect_max_side = 960\nembedder = "insightface:buffalo_s"\n',
        monkeypatch,
    )
    settings = load_settings()
    assert settings.library == tmp_path / "home" / "photos" / "faces.db"  # ~ expanded
    assert settings.min_face == 44
    assert settings.score_threshold == 0.8
    assert settings.detect_max_side == 960
    assert settings.embedder == "insightface:buffalo_s"


def test_env_overrides_file_and_flags_override_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, 'min_face = 44\nscore_threshold = 0.8\nlibrary = "/from/file.db"\n', monkeypatch)
    monkeypatch.setenv("FACETAGS_MIN_FACE", "50")
    monkeypatch.setenv("FACETAGS_LIBRARY", "/from/env.db")
    monkeypatch.setenv("FACETAGS_SCORE_THRESHOLD", "")  # empty means unset
    settings = load_settings()
    assert settings.min_face == 50
    assert settings.library == Path("/from/env.db")
    assert settings.score_threshold == 0.8  # the file still counts where env is silent

    flagged = load_settings(min_face=60, library="/from/flag.db", score_threshold=None)
    assert flagged.min_face == 60
    assert flagged.library == Path("/from/flag.db")
    assert flagged.score_threshold == 0.8  # a None flag is "not given"


BAD_FILE_VALUES = [
    "min_face = 20.5",  # a float is not silently truncated
    'min_face = "twenty"',
    "min_face = true",  # a bool is not an int
    "min_face = 0",
    "detect_max_side = -1",
    "score_threshold = 1.5",
    "score_threshold = -0.1",
    "score_threshold = nan",
    'score_threshold = "high"',
    "embedder = 5",  # not stringified
    "embedder = ['a', 'b']",
    'embedder = "  "',
    "library = 3",
    'library = ""',
    "unknown_setting = 1",
    "min_face = ",  # malformed TOML
    "threads = -1",
    "threads = 1.5",
]


@pytest.mark.parametrize("line", BAD_FILE_VALUES)
def test_bad_file_values_raise_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str
) -> None:
    path = write_config(tmp_path, line + "\n", monkeypatch)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FACETAGS_MIN_FACE", "abc"),
        ("FACETAGS_MIN_FACE", "2.5"),
        ("FACETAGS_MIN_FACE", "-3"),
        ("FACETAGS_DETECT_MAX_SIDE", "0"),
        ("FACETAGS_SCORE_THRESHOLD", "inf"),
        ("FACETAGS_SCORE_THRESHOLD", "2"),
        ("FACETAGS_SCORE_THRESHOLD", "high"),
        ("FACETAGS_THREADS", "-2"),
        ("FACETAGS_THREADS", "four"),
    ],
)
def test_bad_env_values_raise_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()


def test_bad_flags_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="--min-face"):
        load_settings(min_face="many")
    with pytest.raises(ConfigError, match="--score-threshold"):
        load_settings(score_threshold=3.0)
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(no_such_setting=1)


def test_env_numbers_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACETAGS_DETECT_MAX_SIDE", " 2048 ")
    monkeypatch.setenv("FACETAGS_SCORE_THRESHOLD", "0.95")
    settings = load_settings()
    assert settings.detect_max_side == 2048 and settings.score_threshold == 0.95


def test_threads_default_to_automatic_and_come_from_every_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings().threads == 0  # automatic
    write_config(tmp_path, "threads = 3\n", monkeypatch)
    assert load_settings().threads == 3
    monkeypatch.setenv("FACETAGS_THREADS", "2")
    assert load_settings().threads == 2
    assert load_settings(threads=0).threads == 0


def test_explicit_config_file_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACETAGS_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="FACETAGS_CONFIG"):
        load_settings()


def test_unreadable_config_file_raises_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'embedder = "caf\xe9"\n')
    monkeypatch.setenv("FACETAGS_CONFIG", str(path))
    with pytest.raises(ConfigError, match=str(path)):
        load_settings()


# --- the CLI's global options reach ctx.obj ----------------------------------------------------


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """A `probe` sub-command that records the settings the group put in ctx.obj."""
    seen: list[Settings] = []

    @click.command("probe")
    @click.pass_obj
    def command(obj: Settings) -> None:
        seen.append(obj)

    def get_command(ctx: click.Context, name: str) -> click.Command | None:
        return command if name == "probe" else None

    monkeypatch.setattr(cli_mod.cli, "get_command", get_command)
    return seen


def run_cli(*args: str) -> Any:
    return cli_mod.main(list(args))


def test_library_flag_reaches_ctx_obj(tmp_path: Path, probe: list[Settings]) -> None:
    run_cli("--library", str(tmp_path / "flag.db"), "probe")
    assert probe[-1].library == tmp_path / "flag.db"


def test_library_env_reaches_ctx_obj(
    tmp_path: Path, probe: list[Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACETAGS_LIBRARY", str(tmp_path / "env.db"))
    run_cli("probe")
    assert probe[-1].library == tmp_path / "env.db"
    run_cli("--library", str(tmp_path / "flag.db"), "probe")
    assert probe[-1].library == tmp_path / "flag.db"  # the flag beats the environment


def test_library_default_and_config_file_reach_ctx_obj(
    tmp_path: Path, probe: list[Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_cli("probe")
    assert probe[-1].library == tmp_path / "xdg_data_home" / "facetags" / "library.db"
    write_config(tmp_path, f'library = "{tmp_path / "file.db"}"\n', monkeypatch)
    run_cli("probe")
    assert probe[-1].library == tmp_path / "file.db"


def test_bad_setting_is_one_line_and_exit_1(
    probe: list[Settings], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FACETAGS_MIN_FACE", "lots")
    with pytest.raises(SystemExit) as info:
        run_cli("probe")
    assert info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("facetags: error:") and "FACETAGS_MIN_FACE" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not probe
