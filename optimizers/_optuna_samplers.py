"""Optuna's samplers as optimizers: `tpe`, `gp`, `cmaes`, `random`, `qmc`, `nsga2`.

Each wraps an in-memory study and drives it with Optuna's own ask/tell interface, so a
run proposes exactly what a bare Optuna loop with the same sampler and seed would.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from bridge.optimization import Dimension, SearchSpace, Trial

from ._base import BaseOptimizer

#: Constructor arguments that are not optimizer_config keys: the seed comes from the run, and
#: these two are no-ops since Optuna 4.4 (the feature moved to OptunaHub).
_NOT_CONFIG = frozenset({"seed", "restart_strategy", "inc_popsize"})
#: Annotation types a config value can have (JSON-like data); anything else (callables,
#: samplers, mutation/crossover objects, trials) cannot come through optimizer_config.
_PLAIN: dict[str, tuple[type, ...]] = {
    "bool": (bool,),
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "None": (type(None),),
    "dict": (dict,),
    "list": (list, tuple),
}


def distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    """The Optuna distribution of each dimension."""
    return {dim.name: _distribution(dim) for dim in space}


def _distribution(dim: Dimension) -> BaseDistribution:
    if dim.kind == "categorical":
        return CategoricalDistribution(dim.choices)
    assert dim.low is not None and dim.high is not None
    if dim.kind == "integer":
        return IntDistribution(int(dim.low), int(dim.high))
    return FloatDistribution(dim.low, dim.high)


def user_attrs(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics Optuna can store as user attributes: those that are plain JSON values."""
    attrs = {}
    for key, value in metrics.items():
        plain = value.item() if isinstance(value, np.generic) else value
        try:
            json.dumps(plain)
        except (TypeError, ValueError):
            continue
        attrs[str(key)] = plain
    return attrs


@contextmanager
def quiet() -> Iterator[None]:
    """Optuna's "this is experimental" warnings, hidden here only (not process-wide)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _plain_types(annotation: Any) -> tuple[type, ...] | None:
    """The Python types an annotation like 'int | None' allows, or None when it is not plain data."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    if any(word not in _PLAIN and word != "Any" for word in re.findall(r"[A-Za-z_][\w.]*", text)):
        return None
    return tuple(t for part in text.split("|") for t in _PLAIN[part.strip().split("[", 1)[0]])


def _arg_docs(doc: str) -> dict[str, str]:
    """First sentence of each argument in an Optuna (Google-style) docstring's Args section."""
    section = doc.split("Args:", 1)[-1] if "Args:" in doc else ""
    docs = {}
    for name, body in re.findall(r"^ {8}(\w+):\n((?: {12}.*\n?|\s*\n)+)", section, flags=re.MULTILINE):
        text = re.sub(r":\w+:`([^`]*)`|``([^`]*)``", lambda m: m[1] or m[2], " ".join(body.split()))
        docs[name] = re.split(r"(?<=\.)\s", text, maxsplit=1)[0]
    return docs


def _sampler_options(sampler: type[optuna.samplers.BaseSampler]) -> dict[str, tuple[tuple[type, ...], Any, str]]:
    """key -> (allowed types, default, description) for the sampler's plain-data keyword arguments."""
    docs = _arg_docs(sampler.__doc__ or "")
    options = {}
    for param in inspect.signature(sampler).parameters.values():
        if param.name in _NOT_CONFIG or param.kind not in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD):
            continue
        types = None if param.annotation is param.empty else _plain_types(param.annotation)
        if types is not None:
            description = docs.get(param.name, f"passed to optuna.samplers.{sampler.__name__}")
            options[param.name] = (types, param.default, description)
    return options


class OptunaSamplerOptimizer(BaseOptimizer):
    """An Optuna sampler behind the optimizer protocol; config values are passed to the sampler as given.

    `config_keys` are the sampler's constructor arguments that are plain data (so not
    `seed`, which is the run's, nor callables and objects such as `gamma`,
    `constraints_func` or `independent_sampler`). A failed iteration is told as a FAIL
    trial, which Optuna's samplers leave out of their models. Metrics that are plain JSON
    values become the trial's user attributes.
    """

    quick = True  # Optuna's samplers take about a millisecond per ask (GP: see GPOptimizer)

    #: The Optuna sampler class; subclasses set it and get `config_keys`/`defaults` from it.
    sampler: ClassVar[type[optuna.samplers.BaseSampler]]
    #: Packages the sampler imports when it runs (checked up front, for a clear error).
    needs: ClassVar[tuple[str, ...]] = ()
    _types: ClassVar[dict[str, tuple[type, ...]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "sampler" in cls.__dict__:
            options = _sampler_options(cls.sampler)
            cls._types = {key: types for key, (types, _, _) in options.items()}
            cls.defaults = {key: default for key, (_, default, _) in options.items()}
            cls.config_keys = {key: description for key, (_, _, description) in options.items()}

    def setup(self) -> None:
        for module in self.needs:
            if importlib.util.find_spec(module) is None:
                raise ValueError(f"{self.name} needs the {module!r} package: pip install {module}")
        for key, value in self.given_config.items():
            types = self._types[key]
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                names = sorted({"None" if t is type(None) else t.__name__ for t in types})
                raise self.config_error(key, f"must be {' or '.join(names)}")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            with quiet():
                sampler = self.sampler(seed=self.seed, **self.given_config)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{self.name}: optuna.samplers.{self.sampler.__name__} refused the config: {exc}") from exc
        self.study = optuna.create_study(sampler=sampler, direction=self.direction)
        self._distributions = distributions(self.space)
        self._pending: dict[int, optuna.trial.Trial] = {}

    def restore(self, trials: Sequence[Trial]) -> None:
        """Add the earlier trials to the study as finished trials (no sampling).

        Optuna's samplers rebuild their model from the study's trials on every ask, so
        adding them is all a resumed run needs, and it avoids re-running the sampler once
        per earlier trial. (CMA-ES and NSGA-II keep their generation in trial attributes
        that added trials lack; they use the added trials as history but start a fresh
        generation.) A trial outside the current space (narrower bounds on resume) is
        left out: Optuna cannot hold it under these distributions.
        """
        fitting = [t for t in trials if _fits(self.space, t.candidate)]
        with quiet():
            self.study.add_trials([self._frozen(t.candidate, t.score, t.metrics) for t in fitting])

    def ask(self, iteration: int) -> dict[str, Any]:
        with quiet():
            trial = self.study.ask(self._distributions)
        self._pending[iteration] = trial
        return self.within_space(trial.params)

    def tell(
        self, iteration: int, candidate: Mapping[str, Any], score: float | None, metrics: Mapping[str, Any]
    ) -> None:
        """Finish the iteration's trial; one that was never asked is added as a finished trial."""
        trial = self._pending.pop(iteration, None)
        with quiet():
            if trial is None:
                self.study.add_trial(self._frozen(candidate, score, metrics))
                return
            for key, value in user_attrs(metrics).items():
                trial.set_user_attr(key, value)
            if self.failed(score):
                self.study.tell(trial, state=TrialState.FAIL)
            else:
                self.study.tell(trial, score)

    def _frozen(
        self, candidate: Mapping[str, Any], score: float | None, metrics: Mapping[str, Any]
    ) -> optuna.trial.FrozenTrial:
        failed = self.failed(score)
        return optuna.trial.create_trial(
            state=TrialState.FAIL if failed else TrialState.COMPLETE,
            value=None if failed else score,
            params={name: candidate[name] for name in self.space.names},
            distributions=self._distributions,
            user_attrs=user_attrs(metrics),
        )


def _fits(space: SearchSpace, candidate: Mapping[str, Any]) -> bool:
    return set(candidate) == set(space.names) and all(dim.contains(candidate[dim.name]) for dim in space)


class TPEOptimizer(OptunaSamplerOptimizer):
    """Tree-structured Parzen Estimator: Optuna's default sampler; cheap and good on mixed spaces."""

    name = "tpe"
    sampler = optuna.samplers.TPESampler


class GPOptimizer(OptunaSamplerOptimizer):
    """Optuna's Gaussian-process sampler: sample-efficient for a few numeric dimensions; needs torch."""

    quick = False  # a GP fit per ask

    name = "gp"
    sampler = optuna.samplers.GPSampler
    needs = ("torch", "scipy")


class CmaEsOptimizer(OptunaSamplerOptimizer):
    """CMA-ES: an evolution strategy for numeric dimensions (categorical ones are sampled independently)."""

    name = "cmaes"
    sampler = optuna.samplers.CmaEsSampler
    needs = ("cmaes",)

    def setup(self) -> None:
        if not any(dim.numeric for dim in self.space):
            raise ValueError(f"{self.name}: CMA-ES needs at least one numeric (float or integer) dimension")
        super().setup()


class RandomOptimizer(OptunaSamplerOptimizer):
    """Independent uniform sampling: the baseline the others should beat."""

    name = "random"
    sampler = optuna.samplers.RandomSampler


class QMCOptimizer(OptunaSamplerOptimizer):
    """Quasi-Monte Carlo (Sobol/Halton): covers the space more evenly than random sampling."""

    name = "qmc"
    sampler = optuna.samplers.QMCSampler
    needs = ("scipy",)


class NSGAIIOptimizer(OptunaSamplerOptimizer):
    """NSGA-II, a genetic algorithm: generations of `population_size` trials, crossover and mutation."""

    name = "nsga2"
    sampler = optuna.samplers.NSGAIISampler
