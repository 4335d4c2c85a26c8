"""The hosted image generation tool: request options, saved images, partial images.

- ``tools: [image_generation]`` or ``{image_generation: {size, quality, background,
  output_format, output_compression, partial_images, model, input_fidelity}}`` becomes
  the request tool ``{"type": "image_generation", ...}``. On Azure the image model
  deployment travels in the ``x-ms-oai-image-generation-deployment`` header, which
  :mod:`flowrun.providers` adds to every request from ``AZURE_OPENAI_IMAGE_DEPLOYMENT`` /
  ``provider.image_generation_deployment``; without it the step fails before sending.
- Every ``image_generation_call`` output item (base64 ``result``) is saved under the run's
  ``artifacts/<step>/`` as ``<item id>.<format>``, the format read from the image bytes;
  the paths are the step's ``images`` (``steps.X.images``). The run record keeps, per
  image, its path, ``revised_prompt``, size, quality, background, format and action
  (``image_generation`` in the step's record).
- While streaming with ``partial_images``, each
  ``response.image_generation_call.partial_image`` event is saved as
  ``<item id>.partial<N>.<format>`` and listed as ``partial_images`` in the record.

File names come from the model's item ids, so they pass through
:meth:`~flowrun.store.RunStore.artifact_path`, which keeps them inside the run directory.
"""

from __future__ import annotations

from typing import Any

from .. import media
from ..errors import ExecutionError
from ..providers import IMAGE_DEPLOYMENT_HEADER
from . import register_event, register_item, register_tool

PARTIAL_EVENT = "response.image_generation_call.partial_image"
RECORD_KEY = "image_generation"
PARTIALS_KEY = "partial_images"


@register_tool("image_generation")
async def build(sc: Any, name: str, tool: Any) -> list[dict[str, Any]]:
    options = tool.image_generation
    params: dict[str, Any] = {"type": "image_generation"}
    if options is not None:
        params.update(options.model_dump(exclude_none=True))
    if params.get("background") == "transparent" and params.get("output_format") == "jpeg":
        raise ExecutionError(
            f"tool {name!r}: a transparent background needs output_format png or webp, not jpeg",
            sc.step_id,
        )
    provider = getattr(sc.run.client, "provider", None)
    if getattr(provider, "kind", None) == "azure" and not (
        provider.image_generation_deployment or IMAGE_DEPLOYMENT_HEADER in (provider.headers or {})
    ):
        raise ExecutionError(
            f"tool {name!r}: image generation on Azure needs the image model deployment; set "
            "AZURE_OPENAI_IMAGE_DEPLOYMENT or provider.image_generation_deployment (sent as "
            f"{IMAGE_DEPLOYMENT_HEADER})",
            sc.step_id,
        )
    return [params]


def _decode(sc: Any, b64: Any, what: str) -> tuple[bytes, str]:
    if not isinstance(b64, str) or not b64:
        raise ExecutionError(f"{what}: the image data is missing", sc.step_id)
    try:
        data = media.b64decode(b64)
    except media.MediaError as exc:
        raise ExecutionError(f"{what}: {exc}", sc.step_id) from None
    mime = media.sniff(data)
    if mime not in media.IMAGE_MIMES:
        raise ExecutionError(f"{what}: the data is {media.describe_mime(mime)}, not an image",
                             sc.step_id)
    return data, media.EXTENSIONS[mime]


@register_item("image_generation_call")
async def save_image(sc: Any, item: dict[str, Any], response: dict[str, Any]) -> None:
    item_id = str(item.get("id") or "image")
    if item.get("status") == "failed" or item.get("result") is None:
        error = item.get("error") or {}
        detail = error.get("message") or error.get("code") or item.get("status") or "no image"
        raise ExecutionError(f"image generation {item_id} failed: {detail}", sc.step_id)
    data, ext = _decode(sc, item["result"], f"image {item_id}")
    path = sc.run.store.artifact_path(sc.key, f"{item_id}.{ext}", "image")
    sc.run.store.write_file(path, data)
    sc.result.images.append(str(path))
    entry = {"id": item_id, "path": str(path)}
    for key in ("revised_prompt", "size", "quality", "background", "output_format", "action"):
        if item.get(key) is not None:
            entry[key] = item[key]
    sc.result.extra.setdefault(RECORD_KEY, []).append(entry)
    sc.status("running", f"saved image {path.name}")
    return None


@register_event(PARTIAL_EVENT)
def save_partial(sc: Any, event: dict[str, Any]) -> None:
    item_id = str(event.get("item_id") or "image")
    index = event.get("partial_image_index", 0)
    data, ext = _decode(sc, event.get("partial_image_b64"), f"partial image {index} of {item_id}")
    path = sc.run.store.artifact_path(sc.key, f"{item_id}.partial{index}.{ext}", "partial")
    sc.run.store.write_file(path, data)
    sc.result.extra.setdefault(PARTIALS_KEY, []).append(str(path))
    sc.status("running", f"partial image {index + 1}")
