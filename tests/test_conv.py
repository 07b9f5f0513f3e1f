import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

import emulate
from emulate.case import Answer
from probes.conv import ConvProbe, cross_correlate, flipped, parse_array

PROBE = ConvProbe()


def _arrays(rng, dims, size, kernel, cin=1, cout=1):
    x = rng.integers(-9, 10, size=(cin,) + (size,) * dims)
    w = rng.integers(-9, 10, size=(cout, cin) + (kernel,) * dims)
    return x, w


@pytest.mark.parametrize("dims", [1, 2])
def test_truth_matches_scipy_correlate_and_convolve(dims):
    rng = np.random.default_rng(0)
    for size, kernel in [(3, 1), (5, 2), (6, 3), (4, 4)]:
        x, w = _arrays(rng, dims, size, kernel)
        got = cross_correlate(x, w)[0]
        assert np.array_equal(got, signal.correlate(x[0], w[0, 0], mode="valid"))
        # The flipped-kernel foil is the textbook convolution.
        conv = cross_correlate(x, flipped(w))[0]
        assert np.array_equal(conv, signal.convolve(x[0], w[0, 0], mode="valid"))


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize(
    "stride,padding,dilation,cin,cout",
    [(1, 0, 1, 1, 1), (2, 1, 1, 1, 1), (1, 1, 2, 1, 1), (3, 2, 2, 2, 3), (2, 0, 1, 3, 2)],
)
def test_truth_matches_torch(dims, stride, padding, dilation, cin, cout):
    torch = pytest.importorskip("torch")
    fn = torch.nn.functional.conv1d if dims == 1 else torch.nn.functional.conv2d
    rng = np.random.default_rng(1)
    for size, kernel in [(5, 2), (7, 3), (6, 1)]:
        x, w = _arrays(rng, dims, size, kernel, cin, cout)
        want = fn(
            torch.tensor(x[None], dtype=torch.float64),
            torch.tensor(w, dtype=torch.float64),
            stride=stride,
            padding=padding,
            dilation=dilation,
        )[0].numpy()
        got = cross_correlate(x, w, stride=stride, padding=padding, dilation=dilation)
        assert got.shape == want.shape
        assert np.array_equal(got, want.astype(np.int64))


def test_every_generated_truth_is_recomputed_from_its_inputs():
    for case in emulate.cases("conv", {"cin": [1, 2], "cout": [1, 2], "stride": [1, 2]}, n=2):
        p = case.params
        x, w = np.array(case.inputs.input), np.array(case.inputs.kernel)
        if p["cin"] == p["cout"] == 1:  # shown without channel axes
            x, w = x[None], w[None, None]
        y = cross_correlate(x, w, p["stride"], p["padding"], p["dilation"])
        y = y[0] if p["cout"] == 1 else y
        assert y.tolist() == case.truth.output


@pytest.mark.parametrize(
    "text,want",
    [
        (" [[6, 8], [12, 14]]", [[6, 8], [12, 14]]),
        ("The output is:\n```json\n[[6, 8],\n [12, 14]]\n```\nDone.", [[6, 8], [12, 14]]),
        ("[[6 8]\n [12 14]]", [[6, 8], [12, 14]]),
        ("first [1, 2] then the answer\n[3, 4, 5]", [3, 4, 5]),
        ("6 8\n12 14\n", [[6, 8], [12, 14]]),
        ("6, 8\n12, 14", [[6, 8], [12, 14]]),
        ("Output: 42", [42]),
        ("Row 2: 7 9", [7, 9]),
        ("[6.0, -8.0,]", [6, -8]),
        ("[−3, 4]", [-3, 4]),
        ("Step 1: 1*2 = 2\nSo the result is [[2, 3], [4, 5]].", [[2, 3], [4, 5]]),
    ],
)
def test_parser_takes_the_final_array(text, want):
    got, why = parse_array(text)
    assert why is None
    assert got.tolist() == want


@pytest.mark.parametrize(
    "text",
    ["", "   ", "I cannot compute this.", "[[1, 2], [3]]", "[a, b]", "\x00\x01\xff", "[1, 2"],
)
def test_parser_says_why_it_found_nothing(text):
    got, why = parse_array(text)
    assert got is None and why


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.integers(-500, 500), min_size=3, max_size=3), min_size=1, max_size=4),
    st.sampled_from(["json", "rows", "numpy"]),
)
def test_parser_round_trips_any_matrix(rows, style):
    if style == "json":
        text = str(rows)
    elif style == "rows":
        text = "\n".join(" ".join(map(str, r)) for r in rows)
    else:
        text = str(np.array(rows))
    got, _ = parse_array("Answer:\n" + text)
    assert np.array_equal(got.reshape(np.array(rows).shape), rows)


def _case(**cell):
    return emulate.cases("conv", {k: [v] for k, v in cell.items()}, n=1, mode="completion")[0]


def test_scores_each_error_type():
    case = _case(dims=2, size=4, kernel=2, values=9)
    truth, flip = case.truth.output, case.foils["flipped_kernel"]
    assert truth != flip
    score = PROBE.grade
    assert score(case, Answer(str(truth))).correct
    assert score(case, Answer(f"```\n{truth}\n```")).metrics["cell_acc"] == 1.0
    s = score(case, Answer(str(flip)))
    assert not s.correct and s.error_type == "flipped_kernel" and s.metrics["flipped"]
    s = score(case, Answer(str(case.foils["copied_example"][0])))
    assert s.error_type == "copied_example" and s.metrics["copied"]
    s = score(case, Answer("[[1, 2], [3, 4]]"))
    assert s.error_type == "wrong_shape" and s.metrics["cell_acc"] is None
    wrong = [row[:] for row in truth]
    wrong[0][0] += 1
    s = score(case, Answer(str(wrong)))
    assert s.error_type == "wrong_values" and s.metrics["cell_acc"] == pytest.approx(8 / 9)
    assert s.metrics["mae"] == pytest.approx(1 / 9)
    assert score(case, Answer("")).error_type == "empty"
    s = score(case, Answer("[[1, 2,", finish_reason="length"))
    assert s.error_type == "unparseable" and "token limit" in s.reason
    s = score(case, Answer("", error="HTTP 500: boom"))
    assert s.error_type == "api_error" and s.reason == "HTTP 500: boom"


def test_any_output_at_all_is_a_score_not_a_crash():
    case = _case(dims=1, size=5, kernel=2)
    for text in ["\x00" * 100, "9" * 100_000, "[" * 5000 + "]" * 5000, "[1e999, 2]", "🙂" * 50]:
        s = PROBE.score(case, Answer(text))
        assert not s.correct and s.error_type


def test_one_by_one_output_accepts_a_bare_number():
    case = _case(dims=2, size=3, kernel=3)
    assert np.array(case.truth.output).shape == (1, 1)
    assert PROBE.score(case, Answer(str(case.truth.output[0][0]))).correct


def test_covariates_record_multiply_adds_per_cell():
    case = _case(dims=2, size=5, kernel=3, cin=2)
    assert case.covariates["macs_per_cell"] == 18
