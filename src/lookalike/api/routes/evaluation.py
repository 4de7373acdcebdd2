"""Evaluation views of a face model version (admin only), for ``/admin/evaluation``:

``GET /api/admin/evaluation?version=&compare=``: per-class precision / recall / F1, the
confusion matrix with the test photos behind each non-empty cell, the top losses and, with
``compare``, both versions side by side on the same test photos. ``version`` and ``compare``
take a version or an alias (``champion``, ``challenger``); ``version`` defaults to the
champion, and an alias that names no version yet compares nothing (the page asks for the
challenger whether there is one or not). Photos are served by
``GET /api/admin/dataset/images/{sha256}``. The work is ``training.evaluation_views``'s."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from lookalike.api.auth import require_admin
from lookalike.api.deps import RegistryDep, SettingsDep
from lookalike.api.evaluation_schemas import (
    EvaluationComparison,
    EvaluationPublic,
    VersionChoice,
    VersionEvaluation,
)
from lookalike.api.routes.images import admin_router as dataset_images
from lookalike.api.schemas import ErrorPublic
from lookalike.errors import InvalidInput, NotFound
from lookalike.kinds import Alias, ModelKind
from lookalike.registry import Registry

router = APIRouter(
    prefix="/api/admin/evaluation", tags=["admin"], dependencies=[Depends(require_admin)]
)

ALIASES = {a.value for a in Alias}
VERSION_HELP = "A face model version or an alias (champion, challenger)"


def _resolve(registry: Registry, name: str, aliases: dict[str, str]) -> str | None:
    """A version's name (None: an alias that names no version yet); refuses unknown
    versions and versions of another kind (the name generator's)."""
    if name in ALIASES:
        return aliases.get(name)
    row = registry.get(name)  # 404 model.not_found
    if row.kind != ModelKind.FACES:
        raise InvalidInput(
            f"{name} is a {row.kind} model; only face models ({ModelKind.FACES}) have"
            " evaluation views. `lookalike models list` shows them.",
            code="evaluation.wrong_kind",
            status=422,
            details={"version": name, "kind": row.kind},
        )
    return name


def _with_urls(photos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**p, "url": f"{dataset_images.prefix}/{p['sha256']}"} for p in photos]


def _public(view: dict[str, Any], aliases: dict[str, str]) -> VersionEvaluation:
    alias = next((a for a, v in aliases.items() if v == view["version"]), None)
    cells = [{**c, "photos": _with_urls(c["photos"])} for c in view["cells"]]
    return VersionEvaluation.model_validate(
        {**view, "alias": alias, "cells": cells, "top_losses": _with_urls(view["top_losses"])}
    )


@router.get(
    "",
    response_model=EvaluationPublic,
    summary="A model version's evaluation views, or two side by side (admin)",
    responses={
        404: {"model": ErrorPublic, "description": "No such version (or no champion yet)"},
        409: {"model": ErrorPublic, "description": "The version's test set no longer exists"},
    },
)
def evaluation(
    registry: RegistryDep,
    settings: SettingsDep,
    version: str = Query(
        Alias.CHAMPION.value, min_length=1, max_length=64, description=VERSION_HELP
    ),
    compare: str | None = Query(None, max_length=64, description=VERSION_HELP),
) -> EvaluationPublic:
    from lookalike.training.evaluation_views import evaluation_view, side_by_side

    aliases = registry.aliases(ModelKind.FACES)
    name = _resolve(registry, version, aliases)
    if name is None:
        raise NotFound(
            f"No face model is the {version} yet"
            + (": train one first (`lookalike train`)." if version == Alias.CHAMPION else "."),
            code="model.not_found",
            details={"version": version},
        )
    other = _resolve(registry, compare, aliases) if compare else None
    if other == name and compare not in ALIASES:
        raise InvalidInput(
            f"compare names {name}, the version itself; choose another version to compare.",
            code="evaluation.same_version",
            status=422,
            details={"version": name},
        )
    compared = comparison = None
    if other is None or other == name:
        view = evaluation_view(settings, name)
    else:
        view, other_view, diff = side_by_side(settings, name, other)
        compared = _public(other_view, aliases)
        comparison = EvaluationComparison.model_validate(
            {
                **diff,
                "only_version_right": _with_urls(diff["only_version_right"]),
                "only_compare_right": _with_urls(diff["only_compare_right"]),
            }
        )
    return EvaluationPublic(
        version=_public(view, aliases),
        compare=compared,
        comparison=comparison,
        versions=[
            VersionChoice(
                version=row.version,
                alias=next((a for a, v in aliases.items() if v == row.version), None),
                created_at=row.created_at,
            )
            for row in registry.versions(ModelKind.FACES)
        ],
    )
