"""Config patches on the plain YAML data of a (multi-document) config.

* Strategic merge, with Talos's semantics: a patch is one or more partial documents. Maps
  merge key by key; lists are appended, except ``machine.network.interfaces`` (an item
  merges into the one with the same ``interface`` or ``deviceSelector``), their ``vlans``
  (by ``vlanId``) and ``cluster.apiServer.admissionControl`` (by ``name``);
  ``cluster.network.podSubnets``/``serviceSubnets`` and ``cluster.apiServer.auditPolicy``
  are replaced whole. A list containing ``{$patch: replace}`` replaces the original list; a
  map containing ``$patch: replace`` replaces the original map; ``key: {$patch: delete}``
  deletes ``key``; a list item with ``$patch: delete`` deletes the matching items (by the
  list's key, else by every field it gives), in v1alpha1 and multi-doc documents alike; a
  multi-doc patch document with ``$patch: delete`` deletes the matching document (by
  apiVersion/kind/name).
* JSON patch (RFC 6902): a YAML/JSON list of ``add``/``remove``/``replace``/``move``/
  ``copy``/``test`` operations applied to the v1alpha1 document.

``parse_patch`` tells the two apart; ``apply_patches`` applies several in order.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from kos.resources.machineconfig import yamlio
from kos.resources.machineconfig.documents import is_v1alpha1
from kos.resources.machineconfig.errors import ConfigErrors
from kos.resources.machineconfig.yamlio import MAX_EXPANDED, check_data, data_cost


class PatchError(ValueError):
    """A patch is malformed or cannot apply; the message names the operation/path."""


DIRECTIVE = "$patch"
_DELETE: Any = object()
# Talos's merge semantics by YAML path (list item indices left out):
REPLACE_PATHS = frozenset({
    # ``merge:"replace"`` fields: a patch replaces them whole
    "cluster.network.podSubnets", "cluster.network.serviceSubnets", "cluster.apiServer.auditPolicy",
})
KEYED_LISTS: dict[str, tuple[str, ...]] = {
    # lists merged item by item: an item matching an existing one by one of these keys merges into it
    "machine.network.interfaces": ("interface", "deviceSelector"),
    "machine.network.interfaces.vlans": ("vlanId",),
    "cluster.apiServer.admissionControl": ("name",),
}
MERGE_KEYS = {"interfaces": "interface", "vlans": "vlanId"}  # kept for callers; see KEYED_LISTS


@dataclass(frozen=True)
class StrategicMergePatch:
    documents: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class JSON6902Patch:
    operations: tuple[dict[str, Any], ...]


Patch = StrategicMergePatch | JSON6902Patch


def parse_patch(text: str | bytes, *, source: str = "patch") -> Patch:
    """Parse patch text: a YAML/JSON list is a JSON 6902 patch, mappings are strategic merge."""
    try:
        docs = yamlio.load_all(text, what=source)
    except ConfigErrors as exc:
        raise PatchError(str(exc)) from exc
    if len(docs) == 1 and isinstance(docs[0], list):
        ops = docs[0]
        for i, op in enumerate(ops):
            if not isinstance(op, dict) or not isinstance(op.get("op"), str) or not isinstance(op.get("path"), str):
                raise PatchError(
                    f"{source}: operation [{i}] {op!r} is invalid, expected a mapping with 'op' and 'path'"
                )
        return JSON6902Patch(tuple(ops))
    for i, d in enumerate(docs):
        if not isinstance(d, dict):
            raise PatchError(f"{source}: document {i} is {type(d).__name__}, expected a mapping (strategic merge) "
                             "or a single list of JSON patch operations")
    return StrategicMergePatch(tuple(docs))


# --- strategic merge ---------------------------------------------------------------------


def _strip(v: Any) -> Any:
    """Remove directives from patch data that is inserted as is."""
    if isinstance(v, dict):
        return {k: _strip(x) for k, x in v.items() if k != DIRECTIVE}
    if isinstance(v, list):
        return [_strip(x) for x in v if not (isinstance(x, dict) and x.get(DIRECTIVE) == "replace" and len(x) == 1)]
    return v


def merge(base: Any, patch: Any, path: str = "") -> Any:
    """Strategic merge of ``patch`` into ``base`` at YAML ``path`` (neither is modified)."""
    if isinstance(patch, dict):
        directive = patch.get(DIRECTIVE)
        if directive == "delete":
            return _DELETE
        if directive == "replace" or not isinstance(base, dict) or path in REPLACE_PATHS:
            return _strip(patch)
        if directive is not None:
            raise PatchError(f"{path or '<root>'}: {DIRECTIVE}: {str(directive)[:40]!r} is invalid, expected delete "
                             "or replace")
        out = dict(base)
        for k, v in patch.items():
            sub = f"{path}.{k}" if path else str(k)
            merged = merge(out[k], v, sub) if k in out else (_DELETE if _is_delete(v) else _strip(v))
            if merged is _DELETE:
                out.pop(k, None)
            else:
                out[k] = merged
        return out
    if isinstance(patch, list):
        if (any(isinstance(x, dict) and x.get(DIRECTIVE) == "replace" for x in patch) or not isinstance(base, list)
                or path in REPLACE_PATHS):
            return _strip(patch)
        return _merge_list(base, patch, path)
    return patch


def _is_delete(v: Any) -> bool:
    return isinstance(v, dict) and v.get(DIRECTIVE) == "delete"


def _list_keys(path: str) -> tuple[str, ...]:
    keys = KEYED_LISTS.get(path)
    if keys is None:
        last = path.rsplit(".", 1)[-1]
        keys = (MERGE_KEYS[last],) if last in MERGE_KEYS and path.startswith("machine.") else ()
    return keys


def _same(item: Any, selector: dict[str, Any], keys: tuple[str, ...]) -> bool:
    """Does list item ``item`` match ``selector``: by the list's key when the selector has
    one, else by every field the selector gives (``{content: hello, $patch: delete}``)."""
    if not isinstance(item, dict) or not selector:
        return False
    for k in keys:
        if k in selector:
            return bool(item.get(k) == selector[k])
    return all(item.get(k) == v for k, v in selector.items())


def _merge_list(base: list[Any], patch: list[Any], path: str) -> list[Any]:
    keys = _list_keys(path)
    out = list(base)
    for item in patch:
        if _is_delete(item):
            selector = {k: v for k, v in item.items() if k != DIRECTIVE}
            out = [b for b in out if not _same(b, selector, keys)]
            continue
        if keys and isinstance(item, dict) and any(k in item for k in keys):
            idx = next((i for i, b in enumerate(out) if _same(b, item, keys)), None)
            if idx is not None:
                out[idx] = merge(out[idx], item, path)
                continue
        out.append(_strip(item))
    return out


def _doc_key(d: dict[str, Any]) -> tuple[str, str, str]:
    return (str(d.get("apiVersion", "")), str(d.get("kind", "")), str(d.get("name", "")))


def strategic_merge_documents(docs: list[Any], patch: StrategicMergePatch) -> list[Any]:
    out = [copy.deepcopy(d) for d in docs]
    for pd in patch.documents:
        if is_v1alpha1(pd):
            idx = next((i for i, d in enumerate(out) if is_v1alpha1(d)), None)
            if idx is None:
                if not _is_delete(pd):
                    out.insert(0, _strip(pd))
                continue
            merged = merge(out[idx], pd, "")
            if merged is _DELETE:
                del out[idx]
            else:
                out[idx] = merged
            continue
        idx = next((i for i, d in enumerate(out) if isinstance(d, dict) and _doc_key(d) == _doc_key(pd)), None)
        if idx is None:
            if not _is_delete(pd):
                out.append(_strip(pd))
            continue
        if _is_delete(pd):
            del out[idx]
        else:
            out[idx] = merge(out[idx], pd, str(pd.get("kind", "")))
    return out


# --- JSON 6902 ---------------------------------------------------------------------------


def _pointer(path: str, where: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"{where}: path {path!r} is invalid, expected a JSON pointer starting with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, where: str, *, allow_end: bool) -> int:
    if allow_end and token == "-":
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError(f"{where}: list index {token!r} is invalid, expected a non-negative integer")
    i = int(token)
    limit = len(container) + (1 if allow_end else 0)
    if i >= limit:
        raise PatchError(f"{where}: list index {i} is out of range (list has {len(container)} items)")
    return i


def _parent(doc: Any, tokens: list[str], where: str) -> Any:
    cur = doc
    for t in tokens[:-1]:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchError(f"{where}: path component {t!r} does not exist")
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(cur, t, where, allow_end=False)]
        else:
            raise PatchError(f"{where}: cannot descend into {type(cur).__name__} at {t!r}")
    return cur


def _get(doc: Any, tokens: list[str], where: str) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens, where)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"{where}: path component {last!r} does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, where, allow_end=False)]
    raise PatchError(f"{where}: cannot index {type(parent).__name__} with {last!r}")


def _remove(doc: Any, tokens: list[str], where: str) -> Any:
    if not tokens:
        raise PatchError(f"{where}: cannot remove the whole document")
    parent = _parent(doc, tokens, where)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"{where}: path component {last!r} does not exist")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, where, allow_end=False))
    raise PatchError(f"{where}: cannot remove from {type(parent).__name__}")


def _add(doc: Any, tokens: list[str], value: Any, where: str, *, replace: bool = False) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens, where)
    last = tokens[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchError(f"{where}: path component {last!r} does not exist")
        parent[last] = value
    elif isinstance(parent, list):
        i = _index(parent, last, where, allow_end=not replace)
        if replace:
            parent[i] = value
        else:
            parent.insert(i, value)
    else:
        raise PatchError(f"{where}: cannot add into {type(parent).__name__}")
    return doc


def json_patch(doc: Any, ops: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> Any:
    """Apply RFC 6902 operations to a copy of ``doc``; all-or-nothing."""
    out = copy.deepcopy(doc)
    size = data_cost(out)  # what add/copy may grow the document to is bounded (copy doubles)
    for i, op in enumerate(ops):
        name, path = op.get("op"), op.get("path", "")
        where = f"JSON patch operation [{i}] ({str(name)[:20]} {str(path)[:200]})"
        if name in ("add", "replace") or (name == "copy" and isinstance(op.get("from"), str)):
            value = op.get("value") if name != "copy" else _get(out, _pointer(op["from"], where), where)
            size += data_cost(value)
            if size > MAX_EXPANDED:
                raise PatchError(f"{where}: the patched config would exceed {MAX_EXPANDED} bytes")
        tokens = _pointer(str(path), where)
        if name in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"{where}: missing 'value'")
        if name == "add":
            out = _add(out, tokens, copy.deepcopy(op["value"]), where)
        elif name == "remove":
            _remove(out, tokens, where)
        elif name == "replace":
            out = _add(out, tokens, copy.deepcopy(op["value"]), where, replace=True)
        elif name in ("move", "copy"):
            if not isinstance(op.get("from"), str):
                raise PatchError(f"{where}: missing 'from'")
            src = _pointer(op["from"], where)
            if name == "move":
                if tokens[: len(src)] == src and len(tokens) > len(src):
                    raise PatchError(f"{where}: cannot move a value into itself")
                value = _remove(out, src, where)
            else:
                value = copy.deepcopy(_get(out, src, where))
            out = _add(out, tokens, value, where)
        elif name == "test":
            if _get(out, tokens, where) != op["value"]:
                raise PatchError(f"{where}: test failed, value is not {op['value']!r}")
        else:
            raise PatchError(f"{where}: op {name!r} is invalid, expected add, remove, replace, move, copy or test")
    return out


# --- entry points ------------------------------------------------------------------------


def apply_patch(docs: list[Any], patch: Patch) -> list[Any]:
    """Apply one patch to the documents of a config (plain data); returns new documents."""
    if isinstance(patch, StrategicMergePatch):
        return strategic_merge_documents(docs, patch)
    idx = next((i for i, d in enumerate(docs) if is_v1alpha1(d)), None)
    if idx is None:
        raise PatchError("JSON patch: the config has no v1alpha1 document to patch")
    out = list(docs)
    out[idx] = json_patch(docs[idx], patch.operations)
    return out


def apply_patches(docs: list[Any], patches: list[Patch]) -> list[Any]:
    """Apply patches in order; the result obeys the limits of a loaded config."""
    for p in patches:
        docs = apply_patch(docs, p)
    try:
        check_data(docs, what="patched config")
    except ConfigErrors as exc:
        raise PatchError(str(exc)) from None
    return docs
