"""task=rebuild: the rebuilt session read back from a reply, and scored three ways."""

import pytest

from emulate.case import Case
from probes.rebuild import rebuild_prompt, score_rebuild, split_rebuild
from probes.terminal import Commands, Outputs

COMMANDS = ["echo hi > f", "cat f", "cat f"]


def test_a_chat_transcript_splits_at_each_echoed_prompt_line():
    reply = "Sure:\n```\nuser@ubuntu:~$ echo hi > f\nuser@ubuntu:~$ cat f\nhi\n$ cat f\nhi\n```"
    assert split_rebuild(reply, COMMANDS, completion=False) == ["", "hi", "hi"]


def test_outputs_in_blocks_of_their_own_and_a_command_never_reached():
    reply = "```\nuser@ubuntu:~$ echo hi > f\n```\n\n```\nuser@ubuntu:~$ cat f\nho\n```\nDone."
    assert split_rebuild(reply, COMMANDS, completion=False) == ["", "ho", None]


def test_a_completion_starts_with_the_first_commands_output():
    reply = "out1\nuser@ubuntu:~$ cat f\nhi\nuser@ubuntu:~$ cat f\nhi\nuser@ubuntu:~$ rm -rf /"
    assert split_rebuild(reply, COMMANDS, completion=True) == ["out1", "hi", "hi"]


def test_the_prompt_lists_every_command_and_no_output():
    messages = rebuild_prompt("chat", COMMANDS, "{machine}")
    assert messages[-1]["content"].endswith("\n".join(COMMANDS))
    text = rebuild_prompt("completion", COMMANDS, "{machine}")
    assert text.endswith("user@ubuntu:~$ echo hi > f\n") and "`cat f`" in text


def _case(mode="chat"):
    inputs = Commands(COMMANDS, [None, 0, 0], "{machine}")
    return Case("c", "shell", 1, {"task": "rebuild"}, 0, inputs, Outputs(["", "hi", "hi"],
                [None] * 3, [0] * 3), "q", mode=mode)  # fmt: skip


def _transcript(outs):
    pairs = zip(COMMANDS, outs, strict=True)
    body = "\n".join(f"user@ubuntu:~$ {c}\n{o}".rstrip("\n") for c, o in pairs)
    return f"```\n{body}\n```"


def test_a_rebuild_that_repeats_the_models_own_wrong_outputs():
    first = ("```\n\n```", "```\nho\n```", "```\nho\n```")
    score = score_rebuild(_case(), (*first, _transcript(["", "ho", "ho"])), {})
    m = score.metrics
    assert (m["rebuilt_true"], m["rebuilt_own"], m["first_true"]) == pytest.approx(
        (1 / 3, 1, 1 / 3)
    )
    assert m["rebuilt_consistent"] == 1.0
    assert (score.correct, score.error_type) == (False, "repeats_own")


def test_a_true_rebuild_after_a_wrong_first_pass():
    first = ("```\n\n```", "```\nho\n```", "```\nha\n```")
    score = score_rebuild(_case(), (*first, _transcript(["", "hi", "hi"])), {})
    assert score.correct and score.metrics["rebuilt_own"] == pytest.approx(1 / 3)


def test_an_inconsistent_rebuild_and_one_with_no_prompt_line():
    first = ("```\n\n```", "```\nhi\n```", "```\nhi\n```")
    score = score_rebuild(_case(), (*first, _transcript(["", "hi", "x"])), {})
    assert (score.metrics["rebuilt_consistent"], score.error_type) == (0.0, "wrong_output")
    score = score_rebuild(_case(), (*first, "I cannot do that."), {})
    assert (score.error_type, score.metrics["rebuilt_consistent"]) == ("unparseable", None)
    assert score_rebuild(_case(), (*first, " "), {}).error_type == "empty"


def test_output_lines_that_start_with_a_hash_or_dollar_are_output():
    commands = ["cat README.md", "ls"]
    reply = ("```\nuser@ubuntu:~$ cat README.md\n# project\n$5 a line\nNotes.\n"
             "user@ubuntu:~$ ls\ndata docs\n```")  # fmt: skip
    assert split_rebuild(reply, commands, completion=False) == [
        "# project\n$5 a line\nNotes.",
        "data docs",
    ]
