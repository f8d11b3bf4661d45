// One flow through a TypeScript client (scripts/clients): the types that
// openapi-typescript generates from the document a live vitrine serves
// (schema.ts, written beside this file, unedited) and openapi-fetch's
// client over them. tsc checks this file against those types, then node
// runs it against VITRINE_URL with the API key in VITRINE_KEY (write
// scope): products created, listed by owner over several pages, two images
// uploaded and processed, the gallery reordered, an alt text set (a JSON
// merge patch), an image and the products deleted, and one error decoded
// as a Problem. Any surprise throws; the exit status says whether it passed.
import { randomInt, randomUUID } from "node:crypto";
import { deflateSync } from "node:zlib";

import createClient from "openapi-fetch";

import type { components, paths } from "./schema.js";

type Image = components["schemas"]["Image"];
type Problem = components["schemas"]["Problem"];
type Product = components["schemas"]["Product"];

const processTimeout = Number(process.env.PROCESS_TIMEOUT ?? "60") * 1000;

function step(msg: string): void {
  console.log(`ts flow: ${msg}`);
}

function assert(ok: unknown, msg: string): asserts ok {
  if (!ok) throw new Error(msg);
}

// The data of a response once its status is the one expected.
function expect<D>(what: string, r: { data?: D; error?: unknown; response: Response }, status: number): D {
  const got = r.response.status;
  assert(got === status, `${what}: status ${got}, want ${status}: ${JSON.stringify(r.error ?? r.data)}`);
  return r.data as D;
}

// A size×size PNG of one colour (8-bit RGB), made here.
function png(rgb: [number, number, number], size = 16): Uint8Array<ArrayBuffer> {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc32 = (b: Buffer): number => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (kind: string, data: Buffer): Buffer => {
    const body = Buffer.concat([Buffer.from(kind, "latin1"), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8 bits, RGB, no interlace
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array(size).fill(rgb).flat())]);
  const file = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(Buffer.concat(Array(size).fill(row)))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
  return new Uint8Array(file);
}

const client = createClient<paths>({
  baseUrl: process.env.VITRINE_URL!,
  headers: { Authorization: `Bearer ${process.env.VITRINE_KEY!}` },
});

async function upload(productId: string, bytes: Uint8Array<ArrayBuffer>, name: string): Promise<Image> {
  const file = new Blob([bytes], { type: "image/png" });
  const r = await client.POST("/products/{id}/images", {
    params: { path: { id: productId } },
    // openapi-typescript types a binary field as string; the serializer
    // sends the Blob as the multipart field "file" (openapi-fetch's way).
    body: { file: file as unknown as string },
    bodySerializer() {
      const fd = new FormData();
      fd.append("file", file, name);
      return fd;
    },
  });
  const img = expect("upload image", r, 202);
  assert(img.product_id === productId, `uploaded to ${img.product_id}`);
  return img;
}

async function waitReady(productId: string, imageId: string): Promise<Image> {
  const deadline = Date.now() + processTimeout;
  for (;;) {
    const r = await client.GET("/products/{id}/images/{image_id}", {
      params: { path: { id: productId, image_id: imageId } },
    });
    const img = expect("get image", r, 200);
    if (img.status === "ready") return img;
    assert(img.status !== "failed", `image ${imageId} failed: ${JSON.stringify(img.error)}`);
    assert(Date.now() < deadline, `image ${imageId} still ${img.status} after ${processTimeout / 1000}s`);
    await new Promise((ok) => setTimeout(ok, 100));
  }
}

async function main(): Promise<void> {
  // An owner past 2^32: an int32 anywhere on the way would garble it.
  const owner = 5_000_000_000 + randomInt(1_000_000_000);

  step(`create 3 products of user_id ${owner}`);
  const created: Product[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await client.POST("/products", {
      body: { name: `ts flow ${i}`, price: "19.99", user_id: owner, currency: "EUR" },
    });
    const p = expect("create product", r, 201);
    assert(p.user_id === owner && p.price === "19.99" && p.currency === "EUR", JSON.stringify(p));
    created.push(p);
  }

  step("list them by user_id, 2 a page, following next_cursor");
  const seen: string[] = [];
  let pages = 0;
  let cursor: string | undefined;
  do {
    const r = await client.GET("/products", { params: { query: { user_id: owner, limit: 2, cursor } } });
    const page = expect("list products", r, 200);
    pages++;
    assert(page.items.length <= 2, `${page.items.length} items on a page of 2`);
    for (const p of page.items) {
      assert(p.user_id === owner, `user_id ${p.user_id} in a list of ${owner}`);
      seen.push(p.id);
    }
    cursor = page.next_cursor ?? undefined;
    assert(pages < 10, "next_cursor never ends");
  } while (cursor);
  assert(pages >= 2, `${pages} page(s) for 3 products at limit 2`);
  assert(
    JSON.stringify([...seen].sort()) === JSON.stringify(created.map((p) => p.id).sort()),
    `listed ${seen}, created ${created.map((p) => p.id)}`,
  );

  const id = created[0]!.id;
  step("upload an image (multipart, field file) and wait until it is ready");
  const first = await waitReady(id, (await upload(id, png([200, 30, 30]), "red.png")).id);
  assert(first.variants.length > 0, "a ready image without variants");

  step("upload a second image and put it first in the gallery");
  const second = await waitReady(id, (await upload(id, png([30, 30, 200]), "blue.png")).id);
  const ordered = expect(
    "order images",
    await client.PUT("/products/{id}/images/order", {
      params: { path: { id } },
      body: { image_ids: [second.id, first.id] },
    }),
    200,
  );
  assert(
    ordered.images.map((i) => i.id).join() === [second.id, first.id].join(),
    `gallery ${ordered.images.map((i) => i.id)}`,
  );
  const gallery = expect("list images", await client.GET("/products/{id}/images", { params: { path: { id } } }), 200);
  assert(
    gallery.items.map((i) => `${i.id}@${i.position}`).join() === `${second.id}@0,${first.id}@1`,
    `gallery ${gallery.items.map((i) => `${i.id}@${i.position}`)}`,
  );

  step("set the alt text of the first image (application/merge-patch+json)");
  const patched = expect(
    "patch image",
    await client.PATCH("/products/{id}/images/{image_id}", {
      params: { path: { id, image_id: first.id } },
      body: { alt: "a red square" },
      headers: { "Content-Type": "application/merge-patch+json" },
    }),
    200,
  );
  assert(patched.alt === "a red square", `alt ${patched.alt}`);

  step("delete the second image");
  const path = { id, image_id: second.id };
  expect("delete image", await client.DELETE("/products/{id}/images/{image_id}", { params: { path } }), 204);
  const gone = await client.GET("/products/{id}/images/{image_id}", { params: { path } });
  assert(gone.response.status === 404 && gone.error?.code === "not_found", `deleted image: ${gone.response.status}`);
  const prod = expect("get product", await client.GET("/products/{id}", { params: { path: { id } } }), 200);
  assert(prod.images.map((i) => i.id).join() === first.id, `gallery ${prod.images.map((i) => i.id)}`);

  step("delete the products");
  for (const p of created) {
    expect("delete product", await client.DELETE("/products/{id}", { params: { path: { id: p.id } } }), 204);
  }

  step("an unknown product: 404 decoded as a Problem");
  const r = await client.GET("/products/{id}", { params: { path: { id: randomUUID() } } });
  assert(r.response.status === 404, `unknown product: status ${r.response.status}`);
  const ctype = r.response.headers.get("content-type") ?? "";
  assert(ctype.startsWith("application/problem+json"), `content type ${ctype}`);
  const problem: Problem | undefined = r.error;
  assert(problem, "no Problem decoded");
  assert(problem.code === "not_found" && problem.status === 404, JSON.stringify(problem));
  assert(problem.type.startsWith("urn:vitrine:problem:"), problem.type);
  step("passed");
}

main().catch((e: unknown) => {
  console.error(e);
  console.error(`ts flow: FAILED: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
