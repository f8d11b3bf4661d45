"""One flow through the Python client that openapi-python-client generates
from the document a live vitrine serves (scripts/clients).

The generated package, vitrine_client, is imported unedited; this file is
the only hand-written code. It runs against VITRINE_URL with the API key in
VITRINE_KEY (write scope): products created, listed by owner over several
pages, two images uploaded and processed, the gallery reordered, an alt
text set, an image and the products deleted, and one error decoded as a
Problem. Any surprise raises; the exit status says whether it passed.
"""

from __future__ import annotations

import os
import random
import struct
import sys
import time
import uuid
import zlib
from io import BytesIO

from vitrine_client import AuthenticatedClient
from vitrine_client.api.default import (
    create_product,
    delete_image,
    delete_product,
    get_image,
    get_product,
    list_images,
    list_products,
    order_images,
    patch_image,
    upload_image,
)
from vitrine_client.models import (
    Currency,
    Image,
    ImageOrder,
    ImagePage,
    ImagePatch,
    ImageStatus,
    Problem,
    Product,
    ProductInput,
    ProductPage,
    UploadImageFilesBody,
)
from vitrine_client.types import File, Response

PROCESS_TIMEOUT = float(os.environ.get("PROCESS_TIMEOUT", "60"))


def step(msg: str) -> None:
    print(f"python flow: {msg}", flush=True)


def expect(resp: Response, status: int, kind: type | None, what: str):
    """The response's parsed body, once its status and type are right."""
    body = resp.content[:300].decode("utf-8", "replace")
    if resp.status_code != status:
        raise AssertionError(f"{what}: status {resp.status_code}, want {status}: {body}")
    if kind is not None and not isinstance(resp.parsed, kind):
        raise AssertionError(f"{what}: parsed {type(resp.parsed).__name__}, want {kind.__name__}: {body}")
    return resp.parsed


def png(rgb: tuple[int, int, int], size: int = 16) -> bytes:
    """A size×size PNG of one colour (8-bit RGB), made here."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * size  # filter 0, then the pixels
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


def wait_ready(client: AuthenticatedClient, product_id: str, image_id: str) -> Image:
    deadline = time.monotonic() + PROCESS_TIMEOUT
    while True:
        img = expect(get_image.sync_detailed(product_id, image_id, client=client), 200, Image, "get image")
        if img.status == ImageStatus.READY:
            return img
        if img.status == ImageStatus.FAILED:
            raise AssertionError(f"image {image_id} failed: {img.error}")
        if time.monotonic() > deadline:
            raise AssertionError(f"image {image_id} still {img.status} after {PROCESS_TIMEOUT:.0f}s")
        time.sleep(0.1)


def upload(client: AuthenticatedClient, product_id: str, data: bytes, name: str) -> Image:
    body = UploadImageFilesBody(file=File(payload=BytesIO(data), file_name=name, mime_type="image/png"))
    img = expect(upload_image.sync_detailed(product_id, client=client, body=body), 202, Image, "upload image")
    assert img.product_id == product_id, img.product_id
    return img


def main() -> None:
    base, key = os.environ["VITRINE_URL"], os.environ["VITRINE_KEY"]
    client = AuthenticatedClient(base_url=base, token=key, timeout=30.0)
    # An owner past 2^32: an int32 anywhere on the way would garble it.
    owner = 5_000_000_000 + random.randrange(1_000_000_000)

    step(f"create 3 products of user_id {owner}")
    created: list[Product] = []
    for i in range(3):
        inp = ProductInput(name=f"python flow {i}", price="19.99", user_id=owner, currency=Currency.EUR)
        p = expect(create_product.sync_detailed(client=client, body=inp), 201, Product, "create product")
        assert p.user_id == owner and p.price == "19.99" and p.currency == Currency.EUR, p
        created.append(p)

    step("list them by user_id, 2 a page, following next_cursor")
    seen: list[str] = []
    pages, cursor = 0, None
    while True:
        kw = {"cursor": cursor} if cursor else {}
        page = expect(
            list_products.sync_detailed(client=client, user_id=owner, limit=2, **kw), 200, ProductPage, "list"
        )
        pages += 1
        assert len(page.items) <= 2, len(page.items)
        for p in page.items:
            assert p.user_id == owner, p.user_id
            seen.append(p.id)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        assert pages < 10, "next_cursor never ends"
    assert pages >= 2, f"{pages} page(s) for 3 products at limit 2"
    assert sorted(seen) == sorted(p.id for p in created), (seen, [p.id for p in created])

    pid = created[0].id
    step("upload an image (multipart, field file) and wait until it is ready")
    first = upload(client, pid, png((200, 30, 30)), "red.png")
    first = wait_ready(client, pid, first.id)
    assert first.variants, "a ready image without variants"

    step("upload a second image and put it first in the gallery")
    second = wait_ready(client, pid, upload(client, pid, png((30, 30, 200)), "blue.png").id)
    order = ImageOrder(image_ids=[second.id, first.id])
    prod = expect(order_images.sync_detailed(pid, client=client, body=order), 200, Product, "order images")
    assert [i.id for i in prod.images] == [second.id, first.id], [i.id for i in prod.images]
    gallery = expect(list_images.sync_detailed(pid, client=client), 200, ImagePage, "list images")
    assert [(i.id, i.position) for i in gallery.items] == [(second.id, 0), (first.id, 1)], gallery.items

    # patchImage takes application/merge-patch+json and application/json
    # with one schema; this generator's code sends the last one listed.
    step("set the alt text of the first image")
    img = expect(
        patch_image.sync_detailed(pid, first.id, client=client, body=ImagePatch(alt="a red square")),
        200,
        Image,
        "patch image",
    )
    assert img.alt == "a red square", img.alt

    step("delete the second image")
    expect(delete_image.sync_detailed(pid, second.id, client=client), 204, None, "delete image")
    gone = expect(get_image.sync_detailed(pid, second.id, client=client), 404, Problem, "get deleted image")
    assert gone.code == "not_found", gone.code
    prod = expect(get_product.sync_detailed(pid, client=client), 200, Product, "get product")
    assert [i.id for i in prod.images] == [first.id], [i.id for i in prod.images]

    step("delete the products")
    for p in created:
        expect(delete_product.sync_detailed(p.id, client=client), 204, None, "delete product")

    step("an unknown product: 404 decoded as a Problem")
    unknown = str(uuid.uuid4())
    resp = get_product.sync_detailed(unknown, client=client)
    prob = expect(resp, 404, Problem, "get unknown product")
    ctype = resp.headers.get("content-type", "")
    assert ctype.startswith("application/problem+json"), ctype
    assert prob.code == "not_found" and prob.status == 404, prob
    assert prob.type_.startswith("urn:vitrine:problem:"), prob.type_
    step("passed")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 — print what failed, then fail
        import traceback

        traceback.print_exc()
        print(f"python flow: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
