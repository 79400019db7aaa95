"""%%aiflow cells as a model: parsing, the draft, and notebook files as definitions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.interactiveshell import InteractiveShell
from nbformat import v4
from traitlets.config import Config

from aiflow_nb import Workflow
from aiflow_nb.errors import SpecError, UnknownTaskError
from aiflow_nb.magics import AiflowMagics
from aiflow_nb.notebooks import write_code_notebook
from aiflow_nb.workflow import cell_syntax
from aiflow_nb.workflow.cell_syntax import parse_cell
from aiflow_nb.workflow.cells import Draft, workflows_from_notebook


def draft_of(*items: tuple[str, str | None], base_dir: Path | str = ".") -> Draft:
    draft = Draft()
    for line, body in items:
        draft.add(parse_cell(line, body, base_dir))
    return draft


def task_spec(wf: Workflow, name: str) -> dict[str, Any]:
    return next(t for t in wf.to_spec()["tasks"] if t["name"] == name)


def test_task_options_become_the_spec(tmp_path: Path) -> None:
    draft = draft_of(
        ("setup --workflow wf", "import math\n"),
        ("task up --workflow wf", "print(1)"),
        (
            "task t --workflow wf --namespace default --param n=3 --param lr=0.5 --param flag=True "
            "--param nothing=None --param name=abc --streaming --retries 2 --retry-delay 1.5 --timeout 60 "
            "--on-event drift@ops --value '{\"level\": 2}' --action restart --cron '0 * * * *' --tz Europe/Berlin",
            "print(math.sqrt(n))\n\n",
        ),
        (
            "task after --workflow wf --after up,t:FAILED --after up:STOPPED --condition tests.workflow.conds:EveryNth",
            "pass",
        ),
        ("task every --workflow wf --interval 30 --executor dask", "pass"),
        base_dir=tmp_path,
    )
    wf = draft.build("wf")
    assert list(wf.tasks) == ["up", "t", "after", "every"]
    assert task_spec(wf, "every")["executor"] == "dask"
    assert "executor" not in task_spec(wf, "t")  # the engine's default: not in the spec
    t = task_spec(wf, "t")
    assert t["parameters"] == {"n": 3, "lr": 0.5, "flag": True, "nothing": None, "name": "abc"}
    assert (t["streaming"], t["max_retries"], t["retry_delay"], t["timeout"]) == (True, 2, 1.5, 60.0)
    assert t["cwd"] == str(tmp_path.resolve())
    assert t["rules"] == [
        {
            "action": "RESTART",
            "condition": {"type": "event", "key": "drift", "namespace": "ops", "sender": None, "value": {"level": 2}},
        }
    ]
    assert t["schedule"] == {"cron": "0 * * * *", "interval": None, "timezone": "Europe/Berlin", "catchup": False}
    sources = [(c["id"], "".join(c["source"]), c["metadata"].get("tags")) for c in t["notebook"]["cells"]]
    assert sources == [
        ("parameters", "n = 3\nlr = 0.5\nflag = True\nnothing = None\nname = 'abc'", ["parameters"]),
        ("setup", "import math", None),
        ("task", "print(math.sqrt(n))", None),
    ]
    after = task_spec(wf, "after")
    assert [r["condition"] for r in after["rules"]] == [
        {"type": "task_status", "statuses": {"up": "SUCCESS", "t": "FAILED"}},
        {"type": "task_status", "statuses": {"up": "STOPPED"}},
        {
            "type": "custom",
            "class": "tests.workflow.conds:EveryNth",
            "params": {"key": "tick", "n": 2, "namespace": None},
        },
    ]
    assert {r["action"] for r in after["rules"]} == {"START"}
    assert task_spec(wf, "every")["schedule"]["interval"] == 30.0
    # The same cells give the same spec, so resubmitting is the same version.
    assert draft_of(*[("task up --workflow wf", "print(1)")]).build("wf").digest() == (
        draft_of(*[("task up --workflow wf", "print(1)\n")]).build("wf").digest()
    )


def test_rules_workflow_settings_and_notebook_tasks(tmp_path: Path) -> None:
    write_code_notebook(tmp_path / "prep.ipynb", "x = 1", parameters="day = ''")
    rule = "rule stream --workflow wf --action restart --on-event model_drift"
    draft = draft_of(
        ("task prep --workflow wf --notebook prep.ipynb --param day=mon", None),
        ("task stream --workflow wf --streaming", "while True: pass"),
        (rule, None),
        (rule, None),  # the same line again: still one rule
        ("rule stream --workflow wf --on-event model_drift --action stop", None),
        ("workflow wf --trigger-on hour_complete@data --max-active 2 --on-max-active skip", None),
        ("workflow wf --cron '*/5 * * * *' --tz UTC --catchup", None),  # replaces the line above
        base_dir=tmp_path,
    )
    spec = draft.build("wf").to_spec()
    prep = spec["tasks"][0]
    assert prep["path"] == str((tmp_path / "prep.ipynb").resolve()) and prep["cwd"] == str(tmp_path.resolve())
    assert prep["parameters"] == {"day": "mon"}
    assert [(r["action"], r["condition"]["key"]) for r in spec["tasks"][1]["rules"]] == [
        ("RESTART", "model_drift"),
        ("STOP", "model_drift"),
    ]
    assert spec["triggers"] == [] and spec["max_active_executions"] is None
    assert spec["schedule"] == {"cron": "*/5 * * * *", "interval": None, "timezone": "UTC", "catchup": True}
    first = draft_of(
        ("task a --workflow wf", "pass"), ("workflow wf --trigger-on k@data --value 5 --max-active 2", None)
    )
    spec = first.build("wf").to_spec()
    assert spec["triggers"] == [{"type": "event", "key": "k", "namespace": "data", "sender": None, "value": 5}]
    assert spec["max_active_executions"] == 2


def test_a_cell_registered_again_replaces_its_task_setup_and_settings() -> None:
    draft = draft_of(
        ("setup --workflow wf", "import os"),
        ("task a --workflow wf", "print('a1')"),
        ("task b --workflow wf", "print('b')"),
        ("setup --workflow wf", "import sys"),
        ("task a --workflow wf --retries 1", "print('a2')"),
    )
    wf = draft.build("wf")
    assert list(wf.tasks) == ["a", "b"]  # a keeps its place
    spec = task_spec(wf, "a")
    assert spec["max_retries"] == 1
    assert ["".join(c["source"]) for c in spec["notebook"]["cells"][1:]] == ["import sys", "print('a2')"]
    other = draft_of(("task a --workflow wf", "pass"), ("task a --workflow wf --namespace team", "pass"))
    assert other.names() == [("default", "wf"), ("team", "wf")]
    assert [w.namespace for w in other.build_all()] == ["default", "team"]


BAD_LINES = [
    ("task a --workflow wf --bogus", "pass", "unrecognized arguments: --bogus"),
    ("task --workflow wf", "pass", "the following arguments are required: name"),
    ("task a", "pass", "needs --workflow WF"),
    ("setup", "import os", "needs --workflow WF"),
    ("task a --workflow wf", "", "has no code"),
    ("task a --workflow wf --notebook x.ipynb", "print(1)", "either --notebook or code"),
    ("task a --workflow wf --notebook missing.ipynb", None, "does not exist"),
    ("task a --workflow wf --cron 'not cron'", "pass", "cron expression 'not cron' is not valid"),
    ("task a --workflow wf --cron '0 * * * *' --tz Mars/Base", "pass", "timezone 'Mars/Base' does not exist"),
    ("task a --workflow wf --tz UTC", "pass", "--tz needs --cron"),
    ("task a --workflow wf --cron '0 * * * *' --interval 5", "pass", "exactly one of 'cron' or 'interval'"),
    ("task a --workflow wf --interval -5", "pass", "interval must be positive"),
    ("task a --workflow wf --retries x", "pass", "invalid int value: 'x'"),
    ("task a --workflow wf --retries -1", "pass", "max_retries must be a non-negative integer"),
    ("task a --workflow wf --executor ''", "pass", "executor must be the name of an executor, got ''"),
    ("task a --workflow wf --param n", "pass", "--param needs NAME=VALUE"),
    ("task a --workflow wf --value 3", "pass", "--value needs exactly one --on-event"),
    ("task a --workflow wf --action stop", "pass", "--action applies to --on-event"),
    ("task a --workflow wf --action pause --on-event k", "pass", "invalid choice: 'pause'"),
    ("task a --workflow wf --after b:DONE", "pass", "'DONE' is not a task status"),
    ("task a --workflow wf --on-event @ns", "pass", "expected KEY or KEY@NAMESPACE"),
    ("task a --workflow wf --condition nowhere.at_all:Cls", "pass", "cannot be imported"),
    ("task 'bad name' --workflow wf", "pass", "task name 'bad name' is not valid"),
    ("task a --workflow 'bad wf'", "pass", "workflow name 'bad wf' is not valid"),
    ("task a --workflow wf --param 'x=unclosed", "pass", "cannot read"),
    ("rule a --workflow wf", None, "give --on-event, --after or --condition"),
    ("rule a --workflow wf --on-event k", "print(1)", "rule is a line magic"),
    ("workflow wf --max-active 0", None, "max_active_executions must be a positive integer"),
    ("workflow wf --on-max-active never", None, "invalid choice: 'never'"),
    ("workflow wf --value 1", None, "--value needs exactly one --trigger-on"),
    ("setup --workflow wf", None, "setup is a cell magic"),
    ("submit wf", None, "unknown command 'submit'"),
]


@pytest.mark.parametrize(("line", "body", "message"), BAD_LINES)
def test_bad_input_is_one_line_and_leaves_the_draft_unchanged(
    line: str, body: str | None, message: str, tmp_path: Path
) -> None:
    write_code_notebook(tmp_path / "x.ipynb", "pass")
    draft = draft_of(("task a --workflow wf", "print('kept')"), base_dir=tmp_path)
    before = draft.build("wf").to_spec()
    with pytest.raises(SpecError) as err:
        draft.add(parse_cell(line, body, tmp_path))
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)
    assert draft.build("wf").to_spec() == before


def test_submit_checks_name_what_is_missing() -> None:
    with pytest.raises(UnknownTaskError, match="upstream task 'nope' is not in workflow 'wf'"):
        draft_of(("task a --workflow wf --after nope", "pass")).build("wf")
    with pytest.raises(UnknownTaskError, match="rule ghost: workflow 'wf' has no such task"):
        draft_of(("task a --workflow wf", "pass"), ("rule ghost --workflow wf --on-event k", None)).build("wf")
    with pytest.raises(SpecError, match="no workflow default/other is drafted here"):
        draft_of(("task a --workflow wf", "pass")).build("other")
    with pytest.raises(SpecError, match="has no tasks yet"):
        draft_of(("workflow wf --trigger-on k", None)).build("wf")


def code(source: str) -> Any:
    return v4.new_code_cell(source)


NOTEBOOK_CELLS = [
    "%load_ext aiflow_nb",
    "%%aiflow setup --workflow etl\nimport json\n",
    "%%aiflow task extract --workflow etl --param rows=10\nprint(json.dumps(list(range(rows))))",
    "\n%%aiflow task load --workflow etl --after extract\nprint('loaded')",
    "x = 1\n%aiflow rule load --workflow etl --on-event reload \\\n    --action restart\n%aiflow submit etl",
    "%aiflow task prep --workflow report --notebook sub/prep.ipynb",
    "%aiflow workflow report --trigger-on etl_done --max-active 1",
    "%%aiflow task send --workflow report --after prep\nprint('sent')",
    "%%capture\n%aiflow task ignored --workflow nowhere --notebook sub/prep.ipynb",
    "%aiflow run etl",
]


def write_definitions(folder: Path) -> Path:
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    write_code_notebook(folder / "sub" / "prep.ipynb", "print('prep')")
    nb = v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [v4.new_markdown_cell("# Two workflows"), *(code(s) for s in NOTEBOOK_CELLS)]
    path = folder / "flows.ipynb"
    nbformat.write(nb, path)
    return path


def test_notebook_file_defines_workflows_without_running_anything(tmp_path: Path) -> None:
    path = write_definitions(tmp_path / "project")
    etl, report = workflows_from_notebook(path)
    assert (etl.name, list(etl.tasks), report.name, list(report.tasks)) == ("etl", ["extract", "load"], "report",
                                                                             ["prep", "send"])  # fmt: skip
    load = task_spec(etl, "load")
    assert [(r["action"], r["condition"]["type"]) for r in load["rules"]] == [
        ("START", "task_status"),
        ("RESTART", "event"),
    ]
    assert task_spec(etl, "extract")["cwd"] == str((tmp_path / "project").resolve())
    assert task_spec(report, "prep")["path"] == str((tmp_path / "project" / "sub" / "prep.ipynb").resolve())
    assert report.to_spec()["max_active_executions"] == 1
    assert not list((tmp_path / "project").glob("*.duckdb")) and not (tmp_path / "project" / "runs").exists()

    with pytest.raises(SpecError, match=r"flows.ipynb defines several workflows \(default/etl, default/report\)"):
        Workflow.from_notebook(path)
    assert Workflow.from_notebook(path, name="report") == report
    with pytest.raises(SpecError, match="defines no workflow 'nope'"):
        Workflow.from_notebook(path, name="nope")


def test_bad_notebook_files_name_the_cell(tmp_path: Path) -> None:
    def notebook(*sources: str) -> Path:
        nb = v4.new_notebook()
        nb.cells = [code(s) for s in sources]
        path = tmp_path / "bad.ipynb"
        nbformat.write(nb, path)
        return path

    with pytest.raises(SpecError, match=r"bad.ipynb, cell 2: %%aiflow task needs --workflow WF"):
        workflows_from_notebook(notebook("x = 1", "%%aiflow task a\npass"))
    with pytest.raises(SpecError, match="upstream task 'ghost' is not in workflow 'wf'"):
        workflows_from_notebook(notebook("%%aiflow task a --workflow wf --after ghost\npass"))
    with pytest.raises(SpecError, match="defines no workflow"):
        workflows_from_notebook(notebook("print('no magics')"))
    with pytest.raises(SpecError, match="does not exist"):
        Workflow.from_notebook(tmp_path / "missing.ipynb")
    (tmp_path / "junk.ipynb").write_text("{not json")
    with pytest.raises(SpecError, match=r"junk\.ipynb is not a valid notebook"):
        workflows_from_notebook(tmp_path / "junk.ipynb")


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """An in-process IPython with only the magics (no service: defining cells never need one)."""
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    ip = InteractiveShell.instance(config=config)
    magics = AiflowMagics(ip)
    ip.register_magics(magics)
    ip.events.register("pre_run_cell", magics.pre_run_cell)
    ip.events.register("post_run_cell", magics.post_run_cell)
    ip.aiflow_test_magics = magics  # type: ignore[attr-defined]
    yield ip
    ip.events.unregister("pre_run_cell", magics.pre_run_cell)
    ip.events.unregister("post_run_cell", magics.post_run_cell)


def test_the_file_gives_the_specs_the_magics_build_when_its_cells_run(
    shell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_definitions(tmp_path / "project")
    monkeypatch.chdir(path.parent)  # a live kernel resolves against its cwd, the file against its folder
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        source = cell.source
        if cell.cell_type != "code" or "%aiflow run" in source or "%load_ext" in source:
            continue  # the rest needs no service
        source = source.replace("%aiflow submit etl", "")
        result = shell.run_cell(source, cell_id=cell.id)
        assert result.success, (source, result.error_in_exec)
    live = shell.aiflow_test_magics.draft  # type: ignore[attr-defined]
    assert live.names() == [("default", "etl"), ("default", "report"), ("default", "nowhere")]
    from_file = workflows_from_notebook(path)
    # %%capture's body is not read from the file (another cell magic), so compare the two the file has.
    assert [w.to_spec() for w in from_file] == [live.build("etl").to_spec(), live.build("report").to_spec()]
    assert json.dumps(from_file[0].to_spec(), sort_keys=True) == json.dumps(
        Workflow.from_spec(from_file[0].to_spec()).to_spec(), sort_keys=True
    )


def test_rerunning_a_cell_replaces_what_it_made(shell: InteractiveShell) -> None:
    magics: AiflowMagics = shell.aiflow_test_magics  # type: ignore[attr-defined]
    assert shell.run_cell("%%aiflow task first --workflow wf\nprint(1)", cell_id="c1").success
    assert shell.run_cell("%%aiflow task other --workflow wf\nprint(2)", cell_id="c2").success
    assert shell.run_cell("%%aiflow task renamed --workflow wf\nprint(1)", cell_id="c1").success
    assert list(magics.draft.build("wf").tasks) == ["other", "renamed"]
    rules = "%aiflow rule other --workflow wf --on-event a\n%aiflow rule other --workflow wf --on-event b"
    assert shell.run_cell(rules, cell_id="c3").success
    assert shell.run_cell(rules, cell_id="c3").success
    assert [r.condition.to_spec()["key"] for r in magics.draft.build("wf").tasks["other"].rules] == ["a", "b"]
    assert shell.run_cell(rules.splitlines()[1], cell_id="c3").success  # line a deleted from the cell
    assert [r.condition.to_spec()["key"] for r in magics.draft.build("wf").tasks["other"].rules] == ["b"]
    # A cell that fails keeps what it made before.
    assert not shell.run_cell("%%aiflow task renamed2 --workflow wf --retries x\nprint(1)", cell_id="c1").success
    assert list(magics.draft.build("wf").tasks) == ["other", "renamed"]


def test_typed_values() -> None:
    assert [cell_syntax.typed_value(v) for v in ("1", "-2", "0.5", "True", "False", "None", "nan", "x y")] == [
        1, -2, 0.5, True, False, None, "nan", "x y"
    ]  # fmt: skip
    assert [cell_syntax.json_value(v) for v in ('{"a": 1}', "[1, 2]", "3", "text", '"quoted"')] == [
        {"a": 1}, [1, 2], 3, "text", "quoted"
    ]  # fmt: skip
