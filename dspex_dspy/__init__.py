"""DSPy programs whose parameters live in session variables: compile, search, sync and resolve modules.

`import dspex_dspy` imports dspy (the `[dspy]` extra); `bridge` and `optimizers` never do.
See docs/dspy.md.
"""

from ._bridge import DSPyOptimizationBridge, check_teleprompter
from ._inner import InnerEvaluation, InnerEvaluations
from ._lm import API_BASE_ENV, API_KEY_ENV, MODEL_ENV, describe_lm, lm_from_env
from ._lm_parameters import ALWAYS, LM_PARAMETERS, LMParameter
from ._optimizer import DEFAULT_TRIALS, VariableAwareOptimizer
from ._parameters import Parameter, parameters
from ._resolver import MODULES, ModuleVariableResolver, ResolvedModule
from ._search import (
    DEFAULT_SAMPLER,
    SEARCHES,
    BootstrapFewShotSearch,
    BootstrapFewShotWithOptunaSearch,
    BootstrapFewShotWithRandomSearchSearch,
    COPROSearch,
    GEPASearch,
    LabeledFewShotSearch,
    MIPROv2Search,
    SIMBASearch,
    TeleprompterSearch,
    optimizer_name,
)
from ._sync import ParameterSync
from ._toy import TOY_QA, ToyQAEngine, exact_match, toy_accuracy, toy_dataset, toy_lm
from ._trial import TrialResult

__all__ = [
    "ALWAYS",
    "API_BASE_ENV",
    "API_KEY_ENV",
    "DEFAULT_SAMPLER",
    "DEFAULT_TRIALS",
    "LM_PARAMETERS",
    "MODEL_ENV",
    "MODULES",
    "SEARCHES",
    "TOY_QA",
    "BootstrapFewShotSearch",
    "BootstrapFewShotWithOptunaSearch",
    "BootstrapFewShotWithRandomSearchSearch",
    "COPROSearch",
    "DSPyOptimizationBridge",
    "GEPASearch",
    "InnerEvaluation",
    "InnerEvaluations",
    "LMParameter",
    "LabeledFewShotSearch",
    "MIPROv2Search",
    "ModuleVariableResolver",
    "Parameter",
    "ParameterSync",
    "ResolvedModule",
    "SIMBASearch",
    "TeleprompterSearch",
    "ToyQAEngine",
    "TrialResult",
    "VariableAwareOptimizer",
    "check_teleprompter",
    "describe_lm",
    "exact_match",
    "lm_from_env",
    "optimizer_name",
    "parameters",
    "toy_accuracy",
    "toy_dataset",
    "toy_lm",
]
