import pytest

pytest.importorskip("torch", reason="the training probe needs pip install -e '.[torch]'")

import emulate  # noqa: E402
from emulate.case import Answer  # noqa: E402
from probes.training import TrainingProbe, parse_run  # noqa: E402

PROBE = TrainingProbe()


def _case(**cell):
    grid = {"layers": 2, "epochs": 3, "shape_print": "comment", "code": "shown"} | cell
    return emulate.cases("training", grid, n=1, mode="chat")[0]


@pytest.mark.parametrize("shape_print,shape_lines", [("none", 0), ("guarded", 1), ("comment", 13)])
def test_the_script_really_runs(shape_print, shape_lines):
    case = _case(shape_print=shape_print)
    run = parse_run(case.truth.stdout)
    assert case.truth.ok
    assert run["epochs"] == [1, 2, 3] and run["accuracy"] is not None
    # The comment says "once"; the code prints on every forward call: 4 batches x 3
    # epochs and one evaluation.
    assert len(run["shapes"]) == shape_lines


def test_the_true_output_is_correct_and_the_seeds_output_is_not():
    case = _case()
    assert PROBE.score(case, Answer(f"```\n{case.truth.stdout}```")).correct
    lines = case.truth.stdout.splitlines()
    once = [lines[0]] + [ln for ln in lines if not ln.startswith("Input shape")]
    s = PROBE.score(case, Answer("\n".join(once)))
    assert s.error_type == "shape_once" and s.metrics["shape_lines"] == 1
    changed = "\n".join(ln.replace("Input shape:", "Shape of input:") for ln in lines)
    s = PROBE.score(case, Answer(changed))
    assert s.error_type == "shape_text" and s.metrics["shape_text_right"] is False


def test_skipped_epochs_and_numbers():
    case = _case(epochs=10, shape_print="none")
    text = (
        "Epoch 1/10, loss: 1.0000\nEpoch 2/10, loss: 0.9000\n...\n"
        "Epoch 10/10, loss: 0.1000\nFinal accuracy: 0.9900"
    )
    s = PROBE.score(case, Answer(text))
    assert s.error_type == "skipped_epochs" and s.metrics["epochs_skipped"] == 7
    assert s.metrics["format_fidelity"] == 1 and s.metrics["loss_trend_agrees"] is True
    assert s.metrics["last_loss_rel_err"] > 0
    s = PROBE.score(case, Answer("Epoch [1/10] Loss 1.0\nTraining complete"))
    assert s.metrics["format_fidelity"] == 0 and "no final accuracy" in s.reason


def test_described_code_is_not_shown():
    case = _case(code="described")
    user = case.prompt[-1]["content"]
    assert "import torch" not in user and "Print the shape of input once" in user
    assert "Ubuntu 18.04" in case.prompt[0]["content"]
