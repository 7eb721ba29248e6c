"""Bad input is refused before anything runs, each with an error that says what to do."""

from __future__ import annotations

import dspy
import pytest
from dspy.teleprompt import GEPA, BootstrapFewShot, LabeledFewShot, MIPROv2
from dspy_support import dummy_lm, exact, trainset, valset

from bridge import SessionContext
from dspex_dspy import DSPyOptimizationBridge


async def _bridge(session: SessionContext) -> DSPyOptimizationBridge:
    await session.register_variable("temperature", "float", 0.7, constraints={"min": 0.0, "max": 2.0})
    await session.register_variable("max_demos", "integer", 3, constraints={"min": 1, "max": 6})
    await session.register_variable("label", "string", "fast")
    await session.register_variable("effort", "choice", "light", constraints={"choices": ["light", "extreme"]})
    return DSPyOptimizationBridge(session)


async def test_an_unknown_mapping_name_lists_the_valid_ones_for_that_class(session: SessionContext) -> None:
    bridge = await _bridge(session)
    with pytest.raises(ValueError, match="BootstrapFewShot has no parameter 'teacher_temp'") as err:
        await bridge.create_variable_aware_optimizer(BootstrapFewShot, {"teacher_temp": "temperature"}, metric=exact)
    message = str(err.value)
    assert "valid names for BootstrapFewShot: " in message
    for name in ("max_bootstrapped_demos", "max_labeled_demos", "max_rounds", "teacher_temperature"):
        assert name in message
    with pytest.raises(ValueError, match="valid names for LabeledFewShot: k, sample"):
        await bridge.create_variable_aware_optimizer(LabeledFewShot, {"max_bootstrapped_demos": "max_demos"})


async def test_a_mapped_variable_that_does_not_exist(session: SessionContext) -> None:
    bridge = await _bridge(session)
    with pytest.raises(KeyError, match=r"do not exist in session .*: max_bootstrapped_demos -> 'max_demo'"):
        await bridge.create_variable_aware_optimizer(
            BootstrapFewShot, {"max_bootstrapped_demos": "max_demo", "teacher_temperature": "temperature"}
        )


@pytest.mark.parametrize(
    ("teleprompter", "mapping", "message"),
    [
        (
            BootstrapFewShot,
            {"max_bootstrapped_demos": "temperature"},
            r"'temperature' is a 'float' variable; max_bootstrapped_demos \(max_bootstrapped_demos\) takes an "
            r"integer, carried by a 'integer' variable",
        ),
        (
            BootstrapFewShot,
            {"teacher_temperature": "label"},
            r"'label' is a 'string' variable; teacher_temperature "
            r"\(teacher_settings\['lm'\]\.copy\(temperature=\.\.\.\)\) takes a float",
        ),
        (MIPROv2, {"auto": "effort"}, r"'effort' allows \['extreme'\], which auto does not take"),
    ],
    ids=["float for an integer", "string for a temperature", "choices outside a Literal"],
)
async def test_a_variable_whose_type_cannot_carry_the_parameter(
    session: SessionContext, teleprompter: type, mapping: dict[str, str], message: str
) -> None:
    bridge = await _bridge(session)
    with pytest.raises(TypeError, match=message):
        await bridge.create_variable_aware_optimizer(teleprompter, mapping, metric=exact)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (dspy.Predict, "is not a DSPy teleprompter: pass a subclass of dspy.teleprompt.Teleprompter"),
        (len, "is not a DSPy teleprompter"),
        (BootstrapFewShot(), "pass the teleprompter class, not an instance"),
    ],
    ids=["a module class", "a function", "an instance"],
)
async def test_a_teleprompter_class_that_is_not_one(session: SessionContext, given: object, message: str) -> None:
    bridge = await _bridge(session)
    with pytest.raises(TypeError, match=message):
        await bridge.create_variable_aware_optimizer(given, {"max_bootstrapped_demos": "max_demos"})  # type: ignore[arg-type]


async def test_arguments_the_teleprompter_does_not_take_or_gets_twice(session: SessionContext) -> None:
    bridge = await _bridge(session)
    with pytest.raises(TypeError, match="BootstrapFewShot takes no argument 'num_candidates'; it takes "):
        await bridge.create_variable_aware_optimizer(BootstrapFewShot, {"max_rounds": "max_demos"}, num_candidates=3)
    with pytest.raises(ValueError, match=r"\['max_rounds'\] are mapped to variables and passed as arguments too"):
        await bridge.create_variable_aware_optimizer(BootstrapFewShot, {"max_rounds": "max_demos"}, max_rounds=2)


async def test_a_search_needs_a_valset_and_ranges_for_mapped_parameters(session: SessionContext) -> None:
    bridge = await _bridge(session)
    await session.register_variable("threshold", "float", 0.5)
    optimizer = await bridge.create_variable_aware_optimizer(
        BootstrapFewShot, {"max_bootstrapped_demos": "max_demos", "metric_threshold": "threshold"}, metric=exact
    )
    student = dspy.Predict("question -> answer")
    with pytest.raises(ValueError, match="a search of 4 trials compares them on a valset: pass valset="):
        await optimizer.compile(student, trainset=trainset(), n_trials=4)
    with pytest.raises(ValueError, match=r"metric_threshold -> 'threshold' has no range to search: pass search="):
        await optimizer.compile(student, trainset=trainset(), valset=valset(), n_trials=4)
    with pytest.raises(ValueError, match=r"search names 'max_rounds', which is not mapped to a variable"):
        await optimizer.compile(student, trainset=trainset(), valset=valset(), search={"max_rounds": (1, 2)})
    with pytest.raises(ValueError, match=r"unknown optimizer_type 'annealing'; known: "):
        await optimizer.compile(
            student, trainset=trainset(), valset=valset(), search={"metric_threshold": (0, 1)}, sampler="annealing"
        )
    with pytest.raises(ValueError, match=r"tpe: unknown optimizer_config keys \['n_startup'\]"):
        await optimizer.compile(
            student,
            trainset=trainset(),
            valset=valset(),
            search={"metric_threshold": (0, 1)},
            sampler_config={"n_startup": 3},
        )
    with pytest.raises(ValueError, match=r"trainset must be a non-empty list of dspy\.Example"):
        await optimizer.compile(student, trainset=[])
    assert (await session.get_optimization_status("max_demos"))["optimization_id"] is None  # nothing started


async def test_a_failing_compile_raises_what_dspy_raised(session: SessionContext) -> None:
    bridge = await _bridge(session)

    def broken(example: object, prediction: object, trace: object = None) -> bool:
        raise ZeroDivisionError("the metric is broken")

    optimizer = await bridge.create_variable_aware_optimizer(
        BootstrapFewShot, {"max_bootstrapped_demos": "max_demos"}, metric=broken, max_errors=1
    )
    with dspy.context(lm=dummy_lm()), pytest.raises(ZeroDivisionError, match="the metric is broken"):
        await optimizer.compile(dspy.Predict("question -> answer"), trainset=trainset())
    status = await session.get_optimization_status("max_demos")
    assert status["state"] == "failed" and "ZeroDivisionError" in status["error"]
    assert await session.get_variable("max_demos") == 3  # the run gave back the values it started from


async def test_a_derived_lm_setting_needs_an_lm(session: SessionContext) -> None:
    bridge = await _bridge(session)
    optimizer = await bridge.create_variable_aware_optimizer(
        GEPA, {"reflection_temperature": "temperature"}, metric=exact
    )
    with (
        dspy.context(lm=None),
        pytest.raises(ValueError, match=r"reflection_temperature sets an LM, and there is none"),
    ):
        await optimizer.compile(dspy.Predict("question -> answer"), trainset=trainset())
