"""The int -> str -> sentence pipeline built from the one-function helpers."""

from __future__ import annotations

from typing import Any

from kos.controllers.runtime import QTransformController, TransformController, qtransform, transform
from kos.resources.core import Resource

from .testtypes import IntSpec, SentenceSpec, StrSpec


def int_to_str_fn(rt: Any, inp: Resource[IntSpec], out: Resource[StrSpec]) -> None:
    out.spec.value = str(inp.spec.value)


async def str_to_sentence_fn(rt: Any, inp: Resource[StrSpec], out: Resource[SentenceSpec]) -> None:
    out.spec.value = f"{inp.spec.value} sentence"


def int_to_str(**options: Any) -> TransformController:
    return transform("IntToStr", IntSpec, StrSpec, int_to_str_fn, input_finalizers=True, **options)


def str_to_sentence(**options: Any) -> QTransformController:
    return qtransform("StrToSentence", StrSpec, SentenceSpec, str_to_sentence_fn, **options)
