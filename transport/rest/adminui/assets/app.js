// vitrine admin page: plain ES modules, no framework and no build step, so
// the page is exactly these files, embedded in the binary.
import { session, call, upload, sendFile, fetchBlob, ApiError, EventStream } from "./api.js";
import { paint } from "./blurhash.js";

const $ = (id) => document.getElementById(id);

// el builds an element: el("td", {class: "x"}, child, "text", …).
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) e.append(c);
  }
  return e;
}

function say(text) {
  $("status").textContent = text;
}

// sayNext says text, and keeps it through the next navigation (other
// messages end with the view they were said in).
let carry = false;
function sayNext(text) {
  say(text);
  carry = true;
}

const views = ["signin", "products", "editor", "import", "dead"];
function show(view) {
  for (const v of views) $("view-" + v).hidden = v !== view;
  for (const [id, v] of [["nav-products", "products"], ["nav-new", "new"], ["nav-import", "import"], ["nav-dead", "dead"]]) {
    if (v === currentNav) $(id).setAttribute("aria-current", "page");
    else $(id).removeAttribute("aria-current");
  }
}
let currentNav = "";

// ---------- thumbnails: the BlurHash first, the image when it loads ----------

function pickVariant(img, name) {
  const vs = (img.variants || []).filter((v) => v.name === name);
  return vs.find((v) => v.format === "webp") || vs.find((v) => v.format === "jpeg") || vs[0] || null;
}

function thumbnail(img, size = "thumb", alt = "") {
  const box = el("div", { class: "thumb" });
  if (img && img.placeholder) {
    const c = el("canvas", { width: 32, height: 32, "aria-hidden": "true" });
    paint(c, img.placeholder);
    box.append(c);
  }
  const v = img && img.status === "ready" ? pickVariant(img, size) || pickVariant(img, "thumb") : null;
  if (v) {
    const i = el("img", { alt, src: v.url, width: v.width, height: v.height, decoding: "async" });
    i.addEventListener("load", () => i.classList.add("loaded"));
    box.append(i);
  }
  return box;
}

// pictureVariant is the variant that shows a whole photo (fitted inside
// its box, uncropped) on a card: the smallest at least 300 pixels wide,
// else the largest; null when the image has none.
function pictureVariant(img) {
  const inside = (img.variants || []).filter((v) => v.fit === "inside" || (!v.fit && v.name !== "thumb"));
  const byName = new Map();
  for (const v of inside) {
    const have = byName.get(v.name);
    if (!have || (v.format === "webp" && have.format !== "webp") || (v.format === "jpeg" && have.format !== "webp" && have.format !== "jpeg")) byName.set(v.name, v);
  }
  const sized = [...byName.values()].sort((a, b) => a.width - b.width);
  return sized.find((v) => v.width >= 300) || sized[sized.length - 1] || null;
}

// picture shows a ready photo whole, at its own aspect ratio: the BlurHash
// first, the image when it loads. null when it has no uncropped variant.
function picture(img, alt = "") {
  const v = pictureVariant(img);
  if (!v) return null;
  const box = el("div", { class: "thumb whole" });
  box.style.aspectRatio = `${v.width} / ${v.height}`;
  if (img.placeholder) {
    const c = el("canvas", { width: 32, height: 32, "aria-hidden": "true" });
    paint(c, img.placeholder);
    box.append(c);
  }
  const i = el("img", { alt, src: v.url, width: v.width, height: v.height, decoding: "async", draggable: "false" });
  i.addEventListener("load", () => i.classList.add("loaded"));
  box.append(i);
  return box;
}

// ---------- sign-in ----------

async function signIn(key) {
  session.key = key;
  try {
    await call("GET", "/products?limit=1");
  } catch (e) {
    session.key = null;
    throw e;
  }
}

async function detectAdmin() {
  try {
    await call("GET", "/admin/dead-letters?limit=1");
    return true;
  } catch {
    return false;
  }
}

function renderSignIn() {
  currentNav = "";
  show("signin");
  $("nav").hidden = true;
  $("who").hidden = true;
  $("key").focus();
}

$("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const key = $("key").value.trim();
  $("key-error").textContent = "";
  try {
    await signIn(key);
    $("key").value = "";
    await afterSignIn();
    location.hash = "#/products";
    route();
  } catch (err) {
    $("key").setAttribute("aria-invalid", "true");
    $("key-error").textContent = err instanceof ApiError && err.status === 401
      ? "This key is unknown or revoked." : "Could not sign in: " + err.message;
  }
});

async function afterSignIn() {
  const key = session.key;
  $("who-text").textContent = key ? `Signed in with key ${key.slice(0, 8)}…` : "Signed in without a key";
  $("who").hidden = false;
  $("nav").hidden = false;
  $("nav-dead").hidden = !(await detectAdmin());
}

$("signout").addEventListener("click", () => {
  session.key = null;
  recentImports.clear();
  stopEditor();
  sayNext("Signed out.");
  location.hash = "#/signin";
});

// ---------- product list (keyset pages) ----------

const list = { cursor: "", filters: {} };

function listQuery() {
  const q = new URLSearchParams({ limit: "20" });
  for (const [k, v] of Object.entries(list.filters)) if (v) q.set(k, v);
  if (list.cursor) q.set("cursor", list.cursor);
  return q.toString();
}

async function renderProducts() {
  currentNav = "products";
  show("products");
  $("list-error").textContent = "";
  const rows = $("product-rows");
  try {
    const { body } = await call("GET", "/products?" + listQuery());
    rows.replaceChildren(...body.items.map(productRow));
    $("list-empty").hidden = body.items.length > 0;
    list.next = body.next_cursor;
    $("page-next").disabled = !body.next_cursor;
    $("page-first").disabled = !list.cursor;
  } catch (e) {
    $("list-error").textContent = "Could not list products: " + e.message;
  }
}

function productRow(p) {
  const first = p.primary_image || p.images[0];
  const ready = p.images.filter((i) => i.status === "ready").length;
  return el("tr", {},
    el("td", {}, thumbnail(first, "thumb", "")),
    el("td", {}, el("a", { href: `#/products/${p.id}` }, p.name)),
    el("td", {}, `${p.price} ${p.currency}`),
    el("td", {}, String(p.user_id)),
    el("td", {}, p.images.length ? `${ready} of ${p.images.length} ready` : "none"),
    el("td", {}, new Date(p.updated_at).toLocaleString()));
}

$("filters").addEventListener("submit", (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  list.filters = Object.fromEntries([...f.entries()].map(([k, v]) => [k, String(v).trim()]));
  list.cursor = "";
  renderProducts();
});
$("page-next").addEventListener("click", () => { list.cursor = list.next || ""; renderProducts(); });
$("page-first").addEventListener("click", () => { list.cursor = ""; renderProducts(); });

// ---------- the editor: create, edit, photos, live status ----------

// ed is the product being edited. version is the one its form is based
// on (a save sends it as If-Match); seen is the latest one the photos on
// the page show (their changes send it as If-Match), which the product's
// events and the answers to the page's own changes keep current. order
// lists the shown images' ids in gallery order; ops runs the gallery's
// requests one after another, so each sends the ETag the one before left.
const ed = {
  id: null, version: 0, seen: 0, dirty: false, saving: false, queued: [], stream: null,
  cards: new Map(), unclaimed: new Map(), uploading: 0, order: [],
  ops: Promise.resolve(), gen: 0, refreshQueued: false, orderQueued: false, orderBase: null, dragging: null,
};

function stopEditor() {
  if (ed.stream) ed.stream.stop();
  ed.stream = null;
}

const fields = ["name", "description", "price", "currency", "user_id"];
const inputOf = (f) => $(f === "user_id" ? "p-user" : "p-" + f);

function fillForm(p) {
  for (const f of fields) inputOf(f).value = p ? String(p[f] ?? "") : "";
  if (!p) inputOf("currency").value = "EUR";
  ed.dirty = false;
  clearFieldErrors();
}

function formDocument() {
  const doc = {
    name: inputOf("name").value,
    description: inputOf("description").value,
    price: inputOf("price").value.trim(),
    currency: inputOf("currency").value.trim().toUpperCase() || "USD",
  };
  const owner = inputOf("user_id").value.trim();
  if (owner) doc.user_id = /^\d+$/.test(owner) ? Number(owner) : owner;
  return doc;
}

function clearFieldErrors() {
  for (const f of fields) {
    inputOf(f).removeAttribute("aria-invalid");
    $(`p-${f}-error`).textContent = "";
  }
  $("form-error").textContent = "";
}

function showProblem(err) {
  clearFieldErrors();
  const errs = (err.problem && err.problem.errors) || [];
  let shown = false;
  for (const fe of errs) {
    if (fields.includes(fe.field)) {
      inputOf(fe.field).setAttribute("aria-invalid", "true");
      $(`p-${fe.field}-error`).textContent = fe.detail;
      shown = true;
    }
  }
  if (!shown || errs.length === 0) $("form-error").textContent = err.message;
}

for (const f of fields) inputOf(f).addEventListener("input", () => { ed.dirty = true; });

const versionOf = (etag) => Number(String(etag).replace(/"/g, "").split(".").pop());
const ifMatch = () => `"${ed.id}.${ed.version}"`;
const galleryMatch = () => `"${ed.id}.${ed.seen}"`;

async function renderEditor(id) {
  stopEditor();
  currentNav = id ? "" : "new";
  show("editor");
  $("conflict").hidden = true;
  $("confirm-delete").hidden = true;
  if ($("remove-dialog").open) $("remove-dialog").close();
  ed.id = id; ed.version = 0; ed.seen = 0; ed.queued = []; ed.cards = new Map(); ed.unclaimed = new Map(); ed.uploading = 0;
  ed.order = []; ed.ops = Promise.resolve(); ed.gen++; ed.refreshQueued = false; ed.orderQueued = false; ed.orderBase = null; ed.dragging = null;
  $("cards").replaceChildren();
  galleryAlert("");
  $("images").hidden = !id;
  $("delete").hidden = !id;
  $("editor-title").textContent = id ? "Edit product" : "New product";
  $("save").textContent = id ? "Save" : "Create";
  if (!id) {
    fillForm(null);
    inputOf("name").focus();
    return;
  }
  try {
    await loadProduct();
  } catch (e) {
    $("form-error").textContent = "Could not load the product: " + e.message;
    return;
  }
  // Live: every change of this product, from whichever node made it.
  ed.stream = new EventStream(id, onEvent, (state) => {
    if (state === "closed" && ed.id === id) say("This product is gone.");
  }).start();
}

async function loadProduct() {
  const { body, etag } = await call("GET", `/products/${ed.id}`);
  ed.version = versionOf(etag);
  ed.seen = ed.version;
  fillForm(body);
  $("editor-title").textContent = "Edit " + body.name;
  applyGallery(body.images);
}

// An image event that only changes one image's status.
const statusEvents = new Set(["image.pending", "image.processing", "image.ready", "image.failed"]);

function onEvent(ev) {
  const seq = Number(ev.id);
  if (ev.type === "stream.reset") {
    if (!ed.dirty) loadProduct().catch(() => {});
    else scheduleRefresh();
    return;
  }
  if (ev.type.startsWith("image.")) {
    // An image's change is a new version of the product, not a change of
    // its fields: the form stays current.
    if (ed.version === seq - 1) ed.version = seq;
    if (seq <= ed.seen) return; // shown already: the page's own change, or in the last load
    const img = ev.data && ev.data.data;
    if (statusEvents.has(ev.type) && img && img.id) {
      if (!ed.cards.has(img.id) && ed.uploading > 0) {
        // Likely one of our uploads, whose answer has not arrived yet: its
        // card takes it then.
        ed.unclaimed.set(img.id, img);
      } else {
        cardFor(img.id).update(img);
        renderOrder();
      }
      if (seq === ed.seen + 1) ed.seen = seq;
      else scheduleRefresh(); // an event was missed: the gallery as it is now
    } else {
      // image.deleted, image.updated (alt text, or a move that shifts the
      // others), image.reordered: the gallery as it is now.
      scheduleRefresh();
    }
    return;
  }
  if (ev.type === "product.updated") {
    if (seq === ed.seen + 1) ed.seen = seq; // the photos did not change
    else if (seq > ed.seen) scheduleRefresh();
    if (ed.saving) { ed.queued.push(ev); return; }
    if (seq <= ed.version) return; // ours, or older
    if (!ed.dirty) {
      fillForm(ev.data.data);
      ed.version = seq;
      say("This product was just changed elsewhere; the form shows the new values.");
    }
    // With unsaved edits, the version stays: saving them asks to reload.
    return;
  }
  if (ev.type === "product.deleted") {
    stopEditor();
    sayNext("This product was deleted.");
    location.hash = "#/products";
  }
}

$("product-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  clearFieldErrors();
  $("save").disabled = true;
  ed.saving = true;
  try {
    if (!ed.id) {
      const { body } = await call("POST", "/products", { json: formDocument() });
      sayNext(`Created ${body.name}. Drop its photos below.`);
      location.hash = `#/products/${body.id}`;
      return;
    }
    const { body, etag } = await call("PUT", `/products/${ed.id}`, { json: formDocument(), headers: { "If-Match": ifMatch() } });
    const before = ed.version;
    ed.version = versionOf(etag);
    if (ed.seen === before) ed.seen = ed.version; // the photos did not change
    ed.dirty = false;
    $("editor-title").textContent = "Edit " + body.name;
    say("Saved.");
  } catch (err) {
    if (err instanceof ApiError && err.status === 412) {
      $("conflict").hidden = false;
      $("conflict-reload").focus();
    } else {
      showProblem(err);
    }
  } finally {
    $("save").disabled = false;
    ed.saving = false;
    const q = ed.queued;
    ed.queued = [];
    q.forEach(onEvent);
  }
});

$("conflict-reload").addEventListener("click", async () => {
  try {
    await loadProduct();
    $("conflict").hidden = true;
    say("Reloaded: these are the current values.");
    inputOf("name").focus();
  } catch (e) {
    $("form-error").textContent = "Could not reload: " + e.message;
  }
});

$("delete").addEventListener("click", () => { $("confirm-delete").hidden = false; $("confirm-no").focus(); });
$("confirm-no").addEventListener("click", () => { $("confirm-delete").hidden = true; $("delete").focus(); });
$("confirm-yes").addEventListener("click", async () => {
  try {
    stopEditor();
    await call("DELETE", `/products/${ed.id}`);
    sayNext("Product deleted.");
    location.hash = "#/products";
  } catch (e) {
    $("form-error").textContent = "Could not delete: " + e.message;
  }
});

// ---------- the gallery: order, primary photo, alt text, removal, retry ----------

// canRetry says whether a photo offers Retry: only a failure that
// processing again may mend (error.retryable); the server refuses the
// others (409 not_retryable).
export function canRetry(img) {
  return !!img && img.status === "failed" && !!img.error && img.error.retryable === true;
}

// uploadRetryable says whether an upload that failed with an HTTP status
// (0: the server was not reached) may succeed when sent again.
export function uploadRetryable(status) {
  return status === 0 || status === 408 || status === 429 || status >= 500;
}

// primaryOf is the id of the primary photo, as the server's primary_image:
// the first image in gallery order that has variants to serve; null when
// none has. images maps ids to images.
export function primaryOf(order, images) {
  for (const id of order) {
    const img = images.get(id);
    if (img && img.variants && img.variants.length > 0) return id;
  }
  return null;
}

// moved is order with id moved to index to (clamped to the ends).
export function moved(order, id, to) {
  const out = order.filter((x) => x !== id);
  if (out.length === order.length) return order.slice();
  out.splice(Math.max(0, Math.min(to, out.length)), 0, id);
  return out;
}

// rebased is the order want carried onto the gallery's current ids:
// want's ids still there, in want's order, then the new ones in theirs.
export function rebased(want, current) {
  return want.filter((id) => current.includes(id)).concat(current.filter((id) => !want.includes(id)));
}

// cropWindow is the part of a picture width×height (as fractions of its
// width and height, from its top left) that a cover crop into a boxW×boxH
// box keeps around the focal point p, as the server cuts it: the largest
// region of the box's shape the picture holds, centred on p as nearly as
// the picture's edges allow.
export function cropWindow(p, width, height, boxW = 1, boxH = 1) {
  let w = 1, h = 1;
  if (width * boxH > height * boxW) w = Math.min(1, (height * boxW) / boxH / width); // wider than the box: its full height
  else h = Math.min(1, (width * boxH) / boxW / height);
  return {
    left: Math.min(Math.max(0, p.x - w / 2), 1 - w),
    top: Math.min(Math.max(0, p.y - h / 2), 1 - h),
    width: w, height: h,
  };
}

// sameFocus says whether two focal points (null: none, the automatic
// crop) are the same, to the ten-thousandth the server keeps.
export function sameFocus(a, b) {
  if (!a || !b) return !a && !b;
  return Math.round(a.x * 1e4) === Math.round(b.x * 1e4) && Math.round(a.y * 1e4) === Math.round(b.y * 1e4);
}

// cropsMade says whether the image's cover variants (its thumbnails) are
// cut around its focal point: false while the server makes new ones.
export function cropsMade(img) {
  return (img.variants || []).filter((v) => v.fit === "cover").every((v) => sameFocus(v.focal_point, img.focal_point));
}

// nudged is the focal point p moved by dx, dy, kept on the picture.
export function nudged(p, dx, dy) {
  const r = (v) => Math.round(Math.min(1, Math.max(0, v)) * 1e4) / 1e4;
  return { x: r(p.x + dx), y: r(p.y + dy) };
}

const percent = (v) => `${Math.round(v * 100)}%`;
const whereText = (p) => `${percent(p.x)} across, ${percent(p.y)} down`;

const sameOrder = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
// common is a's ids that b has too, in a's order.
const common = (a, b) => a.filter((id) => b.includes(id));

function galleryAlert(text) {
  $("gallery-error").textContent = text;
}

// enqueue runs fn after the gallery's other requests; one for a product
// left meanwhile is skipped.
function enqueue(fn) {
  const gen = ed.gen;
  ed.ops = ed.ops.then(() => (gen === ed.gen ? fn() : undefined)).catch((e) => {
    if (gen === ed.gen) galleryAlert("Could not update the photos: " + e.message);
  });
  return ed.ops;
}

// ourChange records the ETag of a change the page made with If-Match:
// its version follows the one sent, with nothing else between.
function ourChange(before, etag) {
  const v = versionOf(etag);
  if (!etag || Number.isNaN(v)) {
    scheduleRefresh();
    return;
  }
  if (ed.version === before) ed.version = v; // the form's fields did not change
  ed.seen = Math.max(ed.seen, v);
}

// scheduleRefresh reloads the gallery soon (once for a burst of events).
function scheduleRefresh() {
  if (ed.refreshQueued || !ed.id) return;
  ed.refreshQueued = true;
  const gen = ed.gen;
  setTimeout(() => {
    if (gen !== ed.gen) return;
    enqueue(async () => {
      ed.refreshQueued = false;
      await reloadGallery();
    });
  }, 100);
}

// reloadGallery shows the product's images as the server has them now
// (the form is left as it is), and returns their order on the server
// (null when it did not load them). Run it from the queue.
async function reloadGallery() {
  const id = ed.id;
  const { body, etag } = await call("GET", `/products/${id}`);
  if (ed.id !== id) return null;
  const v = versionOf(etag);
  if (v < ed.seen) { // older than what is shown (another node lagging)
    scheduleRefresh();
    return null;
  }
  ed.seen = v;
  return applyGallery(body.images);
}

// applyGallery shows images, a product's whole gallery in order, and
// returns that order. Moves not saved yet are kept, carried onto it,
// unless the photos were reordered elsewhere meanwhile.
function applyGallery(images) {
  const ids = images.map((i) => i.id);
  for (const img of images) {
    if (!ed.cards.has(img.id) && ed.uploading > 0) {
      ed.unclaimed.set(img.id, img); // maybe an upload under way: its card takes it
      continue;
    }
    cardFor(img.id).update(img);
  }
  for (const [id, c] of [...ed.cards]) {
    if (!ids.includes(id)) c.remove();
  }
  const server = ids.filter((id) => ed.cards.has(id));
  let order = server;
  if (ed.orderBase !== null) {
    if (sameOrder(common(server, ed.orderBase), common(ed.orderBase, server))) {
      order = rebased(ed.order, server);
      ed.orderBase = server;
    } else {
      ed.orderBase = null;
      galleryAlert(reorderedElsewhere);
    }
  }
  ed.order = order;
  renderOrder();
  return server;
}

const reorderedElsewhere = "The photos were reordered elsewhere (in another tab, or by someone else) while you moved them. " +
  "This is their order now: move them again if you still want to.";

// renderOrder puts the cards in gallery order (uploads not yet known
// after them), numbers them and badges the primary photo. The focused
// element keeps the focus.
function renderOrder() {
  const list = $("cards");
  const active = document.activeElement;
  const images = new Map([...ed.cards].map(([id, c]) => [id, c.img]));
  const primary = primaryOf(ed.order, images);
  let prev = null;
  ed.order.forEach((id, i) => {
    const c = ed.cards.get(id);
    if (!c) return;
    const want = prev ? prev.nextSibling : list.firstChild;
    if (c.li !== want) list.insertBefore(c.li, want);
    prev = c.li;
    c.place(i, ed.order.length, id === primary);
  });
  if (active && active !== document.activeElement && list.contains(active)) active.focus();
}

const primaryCard = () => [...ed.cards.values()].find((c) => c.primary) || null;

// moveCard moves a photo to index to, shows it at once and saves the
// whole order.
function moveCard(card, to) {
  const from = ed.order.indexOf(card.imageId);
  if (from < 0) return;
  to = Math.max(0, Math.min(to, ed.order.length - 1));
  if (to === from) {
    say(`${card.label()} is already the ${to === 0 ? "first" : "last"} photo.`);
    return;
  }
  const base = ed.order.slice();
  const wasPrimary = primaryCard();
  ed.order = moved(ed.order, card.imageId, to);
  renderOrder();
  galleryAlert("");
  const primary = primaryCard();
  let news = `${card.label()} moved to position ${to + 1} of ${ed.order.length}.`;
  if (primary && primary !== wasPrimary) news += primary === card ? " It is the primary photo now." : ` ${primary.label()} is the primary photo now.`;
  say(news);
  saveOrder(base);
}

// saveOrder sends the shown order once the requests before it are done
// (moves made meanwhile go in the same request). base is the order before
// the first move not saved yet.
function saveOrder(base) {
  if (ed.orderBase === null) ed.orderBase = base;
  if (ed.orderQueued) return;
  ed.orderQueued = true;
  enqueue(async () => {
    ed.orderQueued = false;
    const from = ed.orderBase;
    ed.orderBase = null;
    const want = ed.order.slice();
    if (from !== null && !sameOrder(want, from)) await putOrder(want, from);
  });
}

// putOrder saves want, a gallery order made from base. When the product
// changed meanwhile (412) but nobody else reordered its photos (new
// uploads, statuses, alt texts), the order is carried onto the current
// gallery and sent once more; otherwise the current order is shown and
// the user told.
async function putOrder(want, base) {
  for (let attempt = 0; ; attempt++) {
    const before = ed.seen;
    try {
      const { body, etag } = await call("PUT", `/products/${ed.id}/images/order`,
        { json: { image_ids: want }, headers: { "If-Match": galleryMatch() } });
      ourChange(before, etag);
      if (sameOrder(ed.order, want)) applyGallery(body.images);
      return;
    } catch (err) {
      const stale = err instanceof ApiError && (err.status === 412 || err.status === 422);
      if (!stale) {
        await reloadGallery().catch(() => {});
        galleryAlert("The new order was not saved: " + err.message);
        return;
      }
      const server = await reloadGallery();
      if (ed.orderBase !== null) return; // newer moves are waiting: they go on the gallery as it is now
      if (server === null || attempt > 0 || !sameOrder(common(server, base), common(base, server))) {
        galleryAlert(reorderedElsewhere);
        return;
      }
      want = rebased(want, server);
      base = server;
      ed.order = want.slice();
      renderOrder();
    }
  }
}

// A card is one photo: an upload under way, then its image: its status,
// alt text, place in the gallery, and the means to move, retry or remove it.
let cardSeq = 0;
const dragType = "application/x-vitrine-image";

class Card {
  constructor(key, label) {
    const n = ++cardSeq;
    this.imageId = null;
    this.img = null;
    this.file = null;
    this.primary = false;
    this.savedAlt = ""; // the alt text as the server has it
    this.altEdited = false; // the field holds text typed and not saved yet,
    this.altBase = ""; // typed over this alt text
    this.sendingAlt = null;
    this.editing = null; // the focal point moved with the keyboard, not saved yet
    this.pendingFocus = null; // {point}: a focal point being saved, shown meanwhile
    this.awaitingCrop = false; // a new focal point was saved here: its thumbnail is announced
    this.state = el("span", { class: "state" });
    this.reason = el("p", { class: "reason" });
    this.hint = el("p", { class: "help hint", hidden: true }, "Retrying cannot mend this file: remove it and upload another.");
    this.progress = el("progress", { max: "1", value: "0", "aria-label": "Upload of " + label });
    this.retry = el("button", { type: "button", class: "secondary retry", hidden: true, onclick: () => this.onRetry() }, "Retry");
    this.thumbBox = el("div", { class: "thumb" });
    this.badge = el("span", { class: "badge", hidden: true }, "Primary photo");
    // The picture, with the focal point's marker and the window its
    // thumbnail crops: a click on a ready photo's picture sets the point.
    this.cropWindow = el("div", { class: "crop-window", hidden: true, "aria-hidden": "true" });
    this.marker = el("div", { class: "focal-marker", hidden: true, "aria-hidden": "true" });
    this.stage = el("div", { class: "stage" }, this.thumbBox, this.cropWindow, this.marker);
    this.handle = el("div", { class: "handle", title: "Drag to reorder" }, this.stage, this.badge);
    this.name = el("p", { class: "name" }, label);
    this.pos = el("p", { class: "pos" });
    this.alt = el("input", { id: `alt-${n}`, type: "text", autocomplete: "off", "aria-describedby": `alt-${n}-error alt-help` });
    this.altError = el("p", { class: "error", id: `alt-${n}-error` });
    this.altField = el("div", { class: "alt", hidden: true }, el("label", { for: `alt-${n}` }, "Alt text"), this.alt, this.altError);
    this.earlier = el("button", { type: "button", class: "secondary move", onclick: () => this.move(-1) }, "← Earlier");
    this.later = el("button", { type: "button", class: "secondary move", onclick: () => this.move(1) }, "Later →");
    this.removeButton = el("button", { type: "button", class: "secondary remove", onclick: () => this.onRemove() }, "Remove");
    this.moves = el("div", { class: "moves", hidden: true }, this.earlier, this.later);
    // The thumbnail as the server cut it, how it was cut, and the focal
    // point's keyboard controls.
    this.cropThumb = el("div", { class: "crop-thumb" });
    this.cropState = el("p", { class: "crop-state", id: `crop-${n}` });
    this.focusButton = el("button", { type: "button", class: "secondary focus-set", "aria-describedby": "focus-help", onclick: () => this.startFocus() }, "Set focal point");
    this.resetButton = el("button", { type: "button", class: "secondary focus-reset", hidden: true, onclick: () => this.resetFocus() }, "Reset crop");
    this.focusError = el("p", { class: "error focus-error" });
    this.crop = el("div", { class: "crop", hidden: true },
      el("div", { class: "crop-row" }, this.cropThumb, el("div", {}, el("p", { class: "crop-label" }, "Thumbnail"), this.cropState)),
      el("div", { class: "focus-buttons" }, this.focusButton, this.resetButton), this.focusError);
    this.li = el("li", { class: "card" }, this.handle, this.name, this.pos, this.progress, el("p", {}, this.state), this.reason, this.hint, this.retry,
      this.crop, this.altField, this.moves, el("div", { class: "remove-row" }, this.removeButton));
    this.removeButton.hidden = true;
    this.listen();
    $("cards").append(this.li);
  }

  listen() {
    this.alt.addEventListener("input", () => {
      if (!this.altEdited) this.altBase = this.savedAlt;
      this.altEdited = true;
    });
    this.alt.addEventListener("change", () => this.saveAlt());
    this.alt.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); this.saveAlt(); }
    });
    // Keyboard: Alt+arrows move the focused photo, Delete asks to remove it.
    this.li.addEventListener("keydown", (e) => {
      if (e.target !== this.li || !this.imageId) return;
      if (e.altKey && (e.key === "ArrowLeft" || e.key === "ArrowUp")) { e.preventDefault(); this.move(-1); }
      else if (e.altKey && (e.key === "ArrowRight" || e.key === "ArrowDown")) { e.preventDefault(); this.move(1); }
      else if (e.key === "Delete" && !e.altKey && !e.ctrlKey && !e.metaKey) { e.preventDefault(); this.onRemove(); }
    });
    // The focal point: a click on the picture sets it; while it is moved
    // with the keyboard, arrows move it, Enter saves it, Escape cancels.
    this.stage.addEventListener("click", (e) => this.onPictureClick(e));
    this.stage.addEventListener("keydown", (e) => this.onFocusKey(e));
    this.stage.addEventListener("keyup", (e) => this.onFocusKeyUp(e));
    this.stage.addEventListener("blur", () => {
      // Leaving it cancels, unless the focus comes back at once (the card
      // was only moved in the list).
      setTimeout(() => { if (this.editing && document.activeElement !== this.stage) this.endFocus(); }, 0);
    });
    // The mouse: drag a photo by its picture and drop it on another's place.
    this.handle.addEventListener("dragstart", (e) => {
      if (!this.imageId) { e.preventDefault(); return; }
      ed.dragging = this;
      e.dataTransfer.effectAllowed = "move";
      e.dataTransfer.setData(dragType, this.imageId);
      this.li.classList.add("dragging");
    });
    this.handle.addEventListener("dragend", endDrag);
    this.li.addEventListener("dragover", (e) => {
      const src = draggedCard(e);
      if (!src || !this.imageId) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = "move";
      const ahead = ed.order.indexOf(src.imageId) < ed.order.indexOf(this.imageId);
      this.li.classList.toggle("drop-after", src !== this && ahead);
      this.li.classList.toggle("drop-before", src !== this && !ahead);
    });
    this.li.addEventListener("dragleave", (e) => {
      if (!this.li.contains(e.relatedTarget)) this.li.classList.remove("drop-before", "drop-after");
    });
    this.li.addEventListener("drop", (e) => {
      const src = draggedCard(e);
      if (!src || !this.imageId) return;
      e.preventDefault();
      e.stopPropagation();
      endDrag();
      if (src !== this) moveCard(src, ed.order.indexOf(this.imageId)); // it takes this photo's place
      src.li.focus();
    });
  }

  label() {
    return this.name.textContent;
  }

  setState(state, reason = "", retryable = false) {
    this.li.dataset.state = state;
    this.state.className = "state " + state;
    this.state.textContent = state;
    this.reason.textContent = reason;
    this.retry.hidden = !retryable;
    this.retry.setAttribute("aria-label", `Retry ${this.label()}`);
  }

  update(img) {
    if (!this.imageId) {
      this.imageId = img.id;
      this.li.dataset.imageId = img.id;
      ed.cards.set(img.id, this);
      if (!ed.order.includes(img.id)) ed.order.splice(Math.min(img.position ?? ed.order.length, ed.order.length), 0, img.id);
      this.li.tabIndex = 0;
      this.li.setAttribute("aria-describedby", "reorder-help");
      this.li.setAttribute("aria-keyshortcuts", "Alt+ArrowLeft Alt+ArrowRight Delete");
      this.handle.setAttribute("draggable", "true");
      this.altField.hidden = false;
      this.moves.hidden = false;
      this.removeButton.hidden = false;
      this.removeButton.textContent = "Remove";
      this.removeButton.setAttribute("aria-label", `Remove ${this.label()}`);
      this.earlier.setAttribute("aria-label", `Move ${this.label()} earlier`);
      this.later.setAttribute("aria-label", `Move ${this.label()} later`);
      this.focusButton.setAttribute("aria-label", `Set the focal point of ${this.label()}`);
      this.resetButton.setAttribute("aria-label", `Reset the crop of ${this.label()}`);
    }
    this.img = img;
    this.uploadFailed = false;
    if (!this.file) this.progress.hidden = true;
    // A ready photo shows whole (its focal point is set on it); the
    // others their thumbnail's place, with the BlurHash.
    const whole = img.status === "ready" ? pictureVariant(img) : null;
    const key = img.status + " " + (whole ? whole.url : "");
    if (this.thumbBox.dataset.key !== key) {
      const t = (whole && picture(img, img.alt || "")) || thumbnail(img, "thumb", img.alt || "");
      const i = t.querySelector("img");
      if (i) i.draggable = false; // the card's handle is what is dragged
      this.thumbBox.replaceWith(t);
      this.thumbBox = t;
      this.thumbBox.dataset.status = img.status;
      this.thumbBox.dataset.key = key;
    } else {
      const i = this.thumbBox.querySelector("img");
      if (i) i.alt = img.alt || "";
    }
    this.setState(img.status, img.error ? `${img.error.code}: ${img.error.detail}` : "", canRetry(img));
    this.hint.hidden = !(img.status === "failed" && img.error && !img.error.retryable);
    // The field keeps what the user typed and has not saved.
    const alt = img.alt || "";
    if (!this.altEdited) this.alt.value = alt;
    this.savedAlt = alt;
    this.renderCrop();
  }

  // focusable says whether the photo's focal point can be set: it is
  // ready, shown whole, and has thumbnails cropped to cover their box.
  focusable() {
    const img = this.img;
    return !!img && img.status === "ready" && !!pictureVariant(img) && (img.variants || []).some((v) => v.fit === "cover");
  }

  // shownFocus is the focal point the picture shows: the one being moved
  // with the keyboard, else the one being saved, else the saved one.
  shownFocus() {
    if (this.editing) return this.editing;
    if (this.pendingFocus) return this.pendingFocus.point;
    return (this.img && this.img.focal_point) || null;
  }

  // renderCrop shows the focal point, the window of the picture the
  // thumbnail keeps around it, and the thumbnail the server made.
  renderCrop() {
    const img = this.img;
    const ok = this.focusable();
    this.crop.hidden = !ok;
    this.stage.classList.toggle("focusable", ok);
    if (!ok) {
      this.marker.hidden = true;
      this.cropWindow.hidden = true;
      if (this.editing) this.endFocus();
      return;
    }
    const p = this.shownFocus();
    const pic = pictureVariant(img);
    const thumb = pickVariant(img, "thumb") || (img.variants || []).find((v) => v.fit === "cover");
    this.marker.hidden = !p;
    this.cropWindow.hidden = !p;
    if (p) {
      this.marker.style.left = `${p.x * 100}%`;
      this.marker.style.top = `${p.y * 100}%`;
      const w = cropWindow(p, pic.width, pic.height, thumb.width, thumb.height);
      for (const [k, v] of Object.entries(w)) this.cropWindow.style[k] = `${v * 100}%`;
    }
    this.resetButton.hidden = !p;
    // The server's thumbnail: the old crop until the new one is made.
    const made = cropsMade(img);
    const shown = this.cropThumb.querySelector("img");
    if (!shown || shown.dataset.url !== thumb.url) {
      const i = el("img", { alt: "", src: thumb.url, width: thumb.width, height: thumb.height, decoding: "async", draggable: "false" });
      i.dataset.url = thumb.url;
      this.cropThumb.replaceChildren(i);
    }
    this.cropThumb.classList.toggle("stale", !made || !!this.pendingFocus);
    let text;
    if (this.pendingFocus) text = "Saving the focal point…";
    else if (!made) text = img.focal_point ? "Making the new crop around the focal point…" : "Going back to the automatic crop…";
    else text = img.focal_point ? `Cropped around the focal point (${whereText(img.focal_point)}).` : "Automatic crop (no focal point set).";
    this.cropState.textContent = text;
    this.li.dataset.crop = this.pendingFocus ? "saving" : made ? "made" : "making";
    if (made && !this.pendingFocus && this.awaitingCrop) {
      this.awaitingCrop = false;
      say(`The new thumbnail of ${this.label()} is made: ${img.focal_point ? "cropped around its focal point" : "the automatic crop"}.`);
    }
  }

  // onPictureClick sets the focal point where the picture was clicked.
  onPictureClick(e) {
    if (!this.focusable()) return;
    const i = this.thumbBox.querySelector("img");
    if (!i) return;
    const r = i.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) return;
    if (this.editing) this.endFocus();
    const p = nudged({ x: (e.clientX - r.left) / r.width, y: (e.clientY - r.top) / r.height }, 0, 0);
    this.setFocus(p);
  }

  // startFocus lets the arrow keys move the focal point on the picture.
  startFocus() {
    if (!this.focusable()) return;
    this.focusError.textContent = "";
    this.editing = { ...(this.shownFocus() || { x: 0.5, y: 0.5 }) };
    this.enterDown = false;
    const s = this.stage;
    s.tabIndex = -1;
    s.classList.add("editing");
    s.setAttribute("role", "slider");
    s.setAttribute("aria-roledescription", "focal point");
    s.setAttribute("aria-label", `Focal point of ${this.label()}`);
    s.setAttribute("aria-describedby", "focus-help");
    s.setAttribute("aria-keyshortcuts", "ArrowLeft ArrowRight ArrowUp ArrowDown Enter Escape");
    s.setAttribute("aria-valuemin", "0");
    s.setAttribute("aria-valuemax", "100");
    this.showEditing();
    this.renderCrop();
    s.focus();
    say(`Move the focal point of ${this.label()} with the arrow keys (Shift: finer), Enter saves it, Escape cancels. It is at ${whereText(this.editing)}.`);
  }

  showEditing() {
    this.stage.setAttribute("aria-valuenow", String(Math.round(this.editing.x * 100)));
    this.stage.setAttribute("aria-valuetext", whereText(this.editing));
  }

  endFocus() {
    this.editing = null;
    const s = this.stage;
    s.removeAttribute("tabindex");
    s.classList.remove("editing");
    for (const a of ["role", "aria-roledescription", "aria-label", "aria-describedby", "aria-keyshortcuts", "aria-valuemin", "aria-valuemax", "aria-valuenow", "aria-valuetext"]) s.removeAttribute(a);
    this.renderCrop();
  }

  onFocusKey(e) {
    if (!this.editing || e.altKey || e.ctrlKey || e.metaKey) return;
    const step = e.shiftKey ? 0.01 : 0.05;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (moves[e.key]) {
      e.preventDefault();
      e.stopPropagation();
      this.editing = nudged(this.editing, ...moves[e.key]);
      this.showEditing();
      this.renderCrop();
    } else if (e.key === "Enter") {
      // Saved when the key is released, so that the key's press does not
      // reach the Set focal point button the focus goes back to.
      e.preventDefault();
      e.stopPropagation();
      this.enterDown = true;
    } else if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      this.endFocus();
      this.focusButton.focus();
      say(`The focal point of ${this.label()} was not changed.`);
    }
  }

  onFocusKeyUp(e) {
    if (e.key !== "Enter" || !this.enterDown || !this.editing) return;
    e.preventDefault();
    this.enterDown = false;
    const p = this.editing;
    this.endFocus();
    this.focusButton.focus();
    this.setFocus(p);
  }

  resetFocus() {
    if (this.editing) this.endFocus();
    this.focusButton.focus(); // the Reset button hides
    this.setFocus(null);
  }

  // setFocus saves the focal point p (null: the automatic crop), after
  // the gallery's other requests, showing it meanwhile.
  setFocus(p) {
    if (!this.imageId) return;
    this.focusError.textContent = "";
    const pending = { point: p };
    this.pendingFocus = pending;
    this.renderCrop();
    const base = (this.img && this.img.focal_point) || null;
    enqueue(() => this.patchFocus(pending, base));
  }

  // patchFocus saves pending.point, set over base. When the product
  // changed meanwhile (412) but not this focal point, it is sent once more.
  async patchFocus(pending, base) {
    const done = () => { if (this.pendingFocus === pending) this.pendingFocus = null; };
    if (this.pendingFocus !== pending) return; // a newer one replaces it
    const p = pending.point;
    for (let attempt = 0; ; attempt++) {
      const before = ed.seen;
      try {
        const { body, etag } = await call("PATCH", `/products/${ed.id}/images/${this.imageId}`, {
          json: { focal_point: p }, contentType: "application/merge-patch+json",
          headers: { "If-Match": galleryMatch() },
        });
        ourChange(before, etag);
        done();
        this.awaitingCrop = !cropsMade(body);
        this.update(body);
        if (this.awaitingCrop) {
          say(p ? `Focal point of ${this.label()} set at ${whereText(p)}; its thumbnail is being cropped around it.`
            : `Focal point of ${this.label()} removed; its thumbnail goes back to the automatic crop.`);
        } else {
          say(p ? `Focal point of ${this.label()} set at ${whereText(p)}.` : `${this.label()} has the automatic crop.`);
        }
        return;
      } catch (err) {
        if (err instanceof ApiError && err.status === 412 && attempt === 0) {
          await reloadGallery();
          if (!ed.cards.has(this.imageId)) {
            done();
            galleryAlert(`${this.label()} was removed elsewhere; its focal point was not saved.`);
            return;
          }
          if (sameFocus((this.img && this.img.focal_point) || null, base)) continue; // the product changed, not this point
          done();
          this.renderCrop();
          this.setFocusError("Not saved: this focal point was changed elsewhere meanwhile; the picture shows it now. Set it again if you still want yours.");
          return;
        }
        done();
        this.renderCrop();
        const fe = ((err.problem && err.problem.errors) || []).find((x) => x.field === "focal_point");
        this.setFocusError(fe ? `Not saved: the focal point ${fe.detail}.` : "Not saved: " + err.message);
        return;
      }
    }
  }

  setFocusError(text) {
    this.focusError.textContent = text;
  }

  // place shows the card at index i of n, as the primary photo or not.
  place(i, n, primary) {
    this.primary = primary;
    this.li.dataset.position = String(i);
    this.li.classList.toggle("primary", primary);
    this.badge.hidden = !primary;
    this.pos.textContent = `Photo ${i + 1} of ${n}`;
    this.li.setAttribute("aria-label", `${this.label()}, photo ${i + 1} of ${n}${primary ? ", the primary photo" : ""}`);
    this.earlier.setAttribute("aria-disabled", String(i === 0));
    this.later.setAttribute("aria-disabled", String(i === n - 1));
  }

  move(delta) {
    const i = ed.order.indexOf(this.imageId);
    if (i < 0) return;
    moveCard(this, i + delta);
  }

  saveAlt() {
    if (!this.imageId || !this.altEdited) return;
    const value = this.alt.value.trim();
    if (value === this.sendingAlt) return;
    if (value === this.savedAlt) {
      this.altEdited = false;
      this.setAltError("");
      return;
    }
    this.sendingAlt = value;
    const base = this.altBase;
    enqueue(async () => {
      try {
        await this.patchAlt(value, base);
      } finally {
        this.sendingAlt = null;
      }
    });
  }

  // patchAlt saves the alt text value, typed over base. When the product
  // changed meanwhile (412) but not this alt text, it is sent once more.
  async patchAlt(value, base) {
    for (let attempt = 0; ; attempt++) {
      const before = ed.seen;
      try {
        const { body, etag } = await call("PATCH", `/products/${ed.id}/images/${this.imageId}`, {
          json: { alt: value === "" ? null : value }, contentType: "application/merge-patch+json",
          headers: { "If-Match": galleryMatch() },
        });
        ourChange(before, etag);
        this.setAltError("");
        if (this.alt.value.trim() === value) { // nothing typed since
          this.alt.value = body.alt || "";
          this.altEdited = false;
        }
        this.savedAlt = body.alt || "";
        if (this.img) this.img = { ...this.img, alt: this.savedAlt };
        const i = this.thumbBox.querySelector("img");
        if (i) i.alt = this.savedAlt;
        say(value === "" ? `Alt text of ${this.label()} cleared.` : `Alt text of ${this.label()} saved.`);
        return;
      } catch (err) {
        if (err instanceof ApiError && err.status === 412 && attempt === 0) {
          await reloadGallery();
          if (!ed.cards.has(this.imageId)) {
            galleryAlert(`${this.label()} was removed elsewhere; its alt text was not saved.`);
            return;
          }
          if (this.savedAlt === base) continue; // the product changed, not this text
          this.altBase = this.savedAlt;
          this.setAltError(`Not saved: this alt text was changed elsewhere meanwhile, to “${this.savedAlt}”. ` +
            "Your text is kept here: press Enter in the field to save it over that one.");
          return;
        }
        const fe = ((err.problem && err.problem.errors) || []).find((x) => x.field === "alt");
        this.setAltError(fe ? `Not saved: the alt text ${fe.detail}.` : "Not saved: " + err.message);
        return;
      }
    }
  }

  setAltError(text) {
    this.altError.textContent = text;
    if (text) this.alt.setAttribute("aria-invalid", "true");
    else this.alt.removeAttribute("aria-invalid");
  }

  async send() {
    this.setState("uploading");
    this.progress.value = 0;
    ed.uploading++;
    try {
      const img = await upload(ed.id, this.file, (f) => { this.progress.value = f; });
      this.update(img);
      const later = ed.unclaimed.get(img.id); // its events that came first
      if (later) {
        ed.unclaimed.delete(img.id);
        this.update(later);
      }
      renderOrder();
    } catch (e) {
      this.uploadFailed = true;
      this.setState("failed", e.message, e instanceof ApiError && uploadRetryable(e.status));
      this.removeButton.textContent = "Dismiss";
      this.removeButton.setAttribute("aria-label", `Dismiss ${this.label()}`);
      this.removeButton.hidden = false;
    } finally {
      ed.uploading--;
      if (ed.uploading === 0) {
        for (const img of ed.unclaimed.values()) cardFor(img.id).update(img); // someone else's
        ed.unclaimed.clear();
        renderOrder();
        scheduleRefresh(); // the gallery's order as the server made it
      }
    }
  }

  async onRetry() {
    if (this.uploadFailed || !this.imageId) {
      this.removeButton.hidden = true;
      return this.send();
    }
    this.retry.disabled = true;
    try {
      const { body } = await call("POST", `/products/${ed.id}/images/${this.imageId}/reprocess`);
      this.update(body);
      renderOrder();
      say(`${this.label()} is queued to be processed again.`);
    } catch (e) {
      const code = e instanceof ApiError ? e.problem.code : "";
      this.setState("failed", "Retry refused: " + e.message, code !== "not_retryable" && canRetry(this.img));
    } finally {
      this.retry.disabled = false;
    }
  }

  onRemove() {
    if (!this.imageId) { // a failed upload: nothing on the server
      this.li.remove();
      return;
    }
    askRemove(this);
  }

  remove() {
    if (this.li.contains(document.activeElement)) $("images-title").focus();
    this.li.remove();
    ed.cards.delete(this.imageId);
    ed.order = ed.order.filter((id) => id !== this.imageId);
  }
}

function cardFor(imageId) {
  return ed.cards.get(imageId) || new Card(imageId, "photo " + imageId.slice(-6));
}

function draggedCard(e) {
  if (ed.dragging) return ed.dragging;
  if (!e.dataTransfer || !e.dataTransfer.types.includes(dragType)) return null;
  return ed.cards.get(e.dataTransfer.getData(dragType)) || null; // "" while dragging over
}

function endDrag() {
  if (ed.dragging) ed.dragging.li.classList.remove("dragging");
  ed.dragging = null;
  for (const li of $("cards").querySelectorAll(".drop-before, .drop-after")) li.classList.remove("drop-before", "drop-after");
}

// Removing a photo: asked in a modal dialog, whose "Keep it" has the
// focus; the DELETE is conditional on the gallery the page shows.
let removing = null, removeOpener = null;
const removeDialog = $("remove-dialog");

function askRemove(card) {
  removing = card;
  removeOpener = document.activeElement; // where the focus goes back to when kept
  $("remove-text").textContent = `Remove ${card.label()} from this product? Its files are deleted too; this cannot be undone.`;
  const preview = thumbnail(card.img, "thumb", "");
  $("remove-preview").replaceChildren(preview);
  removeDialog.returnValue = "";
  removeDialog.showModal();
  $("remove-no").focus();
}

$("remove-no").addEventListener("click", () => removeDialog.close("keep"));
$("remove-yes").addEventListener("click", () => removeDialog.close("remove"));
removeDialog.addEventListener("close", () => {
  const card = removing, opener = removeOpener;
  removing = null;
  removeOpener = null;
  if (!card) return;
  if (removeDialog.returnValue === "remove") removePhoto(card);
  else if (opener && card.li.contains(opener)) opener.focus();
  else if (card.li.isConnected) card.removeButton.focus();
});

function removePhoto(card) {
  const id = card.imageId;
  enqueue(async () => {
    const before = ed.seen;
    try {
      const { etag } = await call("DELETE", `/products/${ed.id}/images/${id}`, { headers: { "If-Match": galleryMatch() } });
      ourChange(before, etag);
    } catch (err) {
      if (err instanceof ApiError && err.status === 412) {
        await reloadGallery();
        galleryAlert(`${card.label()} was not removed: the photos were changed elsewhere (in another tab, or by someone else) ` +
          "since this page showed them. They are reloaded: check them, and remove it again if you still want to.");
        if (card.li.isConnected) card.li.focus();
        return;
      }
      if (!(err instanceof ApiError && err.status === 404)) { // 404: removed already
        galleryAlert(`${card.label()} was not removed: ${err.message}`);
        return;
      }
      scheduleRefresh();
    }
    galleryAlert("");
    const i = ed.order.indexOf(id);
    const next = ed.cards.get(ed.order[i + 1]) || ed.cards.get(ed.order[i - 1]);
    card.remove();
    renderOrder();
    if (next) next.li.focus();
    say(`${card.label()} removed.`);
  });
}

function addFiles(files) {
  for (const f of files) {
    if (!f.type.startsWith("image/") && f.type !== "") {
      say(`${f.name} is not an image; skipped.`);
      continue;
    }
    const c = new Card(null, f.name);
    c.file = f;
    c.send();
  }
}

const zone = $("dropzone");
zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
zone.addEventListener("dragleave", () => zone.classList.remove("over"));
zone.addEventListener("drop", (e) => {
  e.preventDefault();
  zone.classList.remove("over");
  if (!ed.dragging) addFiles(e.dataTransfer.files);
  endDrag();
});
// Files dropped on the photos are uploaded too (rather than opened by the browser).
const hasFiles = (e) => !ed.dragging && e.dataTransfer && e.dataTransfer.types.includes("Files");
$("cards").addEventListener("dragover", (e) => { if (hasFiles(e)) e.preventDefault(); });
$("cards").addEventListener("drop", (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  addFiles(e.dataTransfer.files);
});
$("files").addEventListener("change", (e) => { addFiles(e.target.files); e.target.value = ""; });

// ---------- imports: a catalog file, its rows applied in the background ----------

// importType is the Content-Type an import file is sent as, by its name:
// NDJSON for .ndjson and .jsonl, CSV for .csv; another file goes as its
// own type, for the server to refuse (415) or take.
export function importType(name, type) {
  const ext = String(name).toLowerCase().split(".").pop();
  if (ext === "ndjson" || ext === "jsonl") return "application/x-ndjson";
  if (ext === "csv") return "text/csv";
  return type || "application/octet-stream";
}

// importCounts is an import's rows as the page says them.
export function importCounts(rows) {
  let s = `${rows.applied} applied, ${rows.failed} failed`;
  if (rows.pending > 0) s += `, ${rows.pending} pending`;
  return s + ` (of ${rows.total} ${rows.total === 1 ? "row" : "rows"})`;
}

// The imports of this tab's session, newest first: in sessionStorage, as
// the key is, so the user can come back to one.
const importsKey = "vitrine.imports";
const recentImports = {
  list() {
    try { return JSON.parse(sessionStorage.getItem(importsKey)) || []; } catch { return []; }
  },
  save(list) { sessionStorage.setItem(importsKey, JSON.stringify(list.slice(0, 20))); },
  remember(body, name) {
    this.save([{ id: body.id, name, created_at: body.created_at, status: body.status, rows: body.rows },
      ...this.list().filter((x) => x.id !== body.id)]);
  },
  update(body) {
    const list = this.list();
    const r = list.find((x) => x.id === body.id);
    if (!r) return;
    r.status = body.status;
    r.rows = body.rows;
    this.save(list);
  },
  get(id) { return this.list().find((x) => x.id === id) || null; },
  clear() { sessionStorage.removeItem(importsKey); },
};

// imp is the import view: gen ends the polling of a view left; last is
// the import a POST just answered (shown before the first poll).
const imp = { gen: 0, id: null, last: null };
const statusWords = { queued: "Queued: waiting to be applied", running: "Running: rows are being applied", completed: "Completed" };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function stopImport() {
  imp.gen++;
  imp.id = null;
}

async function renderImport(id) {
  currentNav = "import";
  show("import");
  const gen = imp.gen;
  imp.id = id;
  $("import-error").textContent = "";
  $("import-current").hidden = !id;
  renderRecentImports();
  if (!id) return;
  const known = recentImports.get(id);
  $("import-name").textContent = known ? known.name : id;
  $("import-rows").replaceChildren();
  $("import-more").hidden = true;
  $("import-download").hidden = true;
  $("import-download-note").textContent = "";
  const first = imp.last && imp.last.id === id ? imp.last : null;
  imp.last = null;
  if (first) showImport(first);
  else {
    $("import-state").textContent = "Loading…";
    setProgress(null);
  }
  followImport(id, gen, first ? first.status : null);
}

// followImport polls the import every half second until it is completed,
// while the view shows it.
async function followImport(id, gen, was) {
  let failures = 0;
  for (;;) {
    if (gen !== imp.gen) return;
    if (was !== null) await sleep(failures ? 2000 : 500);
    if (gen !== imp.gen) return;
    let body;
    try {
      ({ body } = await call("GET", `/imports/${encodeURIComponent(id)}`));
      failures = 0;
      if (gen === imp.gen) $("import-error").textContent = "";
    } catch (e) {
      if (gen !== imp.gen) return;
      if (e instanceof ApiError && (e.status === 404 || e.status === 401 || e.status === 403)) {
        $("import-state").textContent = "";
        $("import-error").textContent = e.status === 404 ? "This import is unknown here: it is another key's, or the server no longer has it." : "Could not load the import: " + e.message;
        return;
      }
      failures++;
      was = was || "unknown";
      $("import-error").textContent = `Could not load the import (${e.message}); trying again…`;
      continue;
    }
    if (gen !== imp.gen) return;
    showImport(body);
    recentImports.update(body);
    renderRecentImports();
    if (body.status === "completed") {
      if (was !== null && was !== "completed") say(`Import of ${$("import-name").textContent} completed: ${importCounts(body.rows)}.`);
      return;
    }
    was = body.status;
  }
}

function setProgress(body) {
  const bar = $("import-progress");
  if (!body) {
    bar.removeAttribute("aria-valuenow");
    bar.setAttribute("aria-valuetext", "not known yet");
    $("import-progress-fill").style.width = "0";
    return;
  }
  const r = body.rows;
  const done = r.applied + r.failed;
  const pct = r.total > 0 ? Math.round((done / r.total) * 100) : body.status === "completed" ? 100 : 0;
  bar.setAttribute("aria-valuenow", String(pct));
  bar.setAttribute("aria-valuetext", `${done} of ${r.total} ${r.total === 1 ? "row" : "rows"} done${body.status === "completed" ? ", completed" : ""}`);
  bar.dataset.status = body.status;
  $("import-progress-fill").style.width = `${pct}%`;
}

function showImport(body) {
  $("import-state").textContent = statusWords[body.status] || body.status;
  $("import-state").dataset.status = body.status;
  setProgress(body);
  $("import-counts").textContent = importCounts(body.rows);
  const when = [`sent ${new Date(body.created_at).toLocaleString()}`];
  if (body.finished_at) when.push(`finished ${new Date(body.finished_at).toLocaleString()}`);
  $("import-when").textContent = `${body.format === "csv" ? "CSV" : "NDJSON"} file, ${when.join(", ")}.`;
  const errs = body.errors || [];
  $("import-rows").replaceChildren(...errs.map((e) => {
    const more = (e.errors || []).filter((f) => !String(e.detail).includes(f.detail)); // the fields' errors the detail does not say
    return el("tr", {},
      el("td", {}, String(e.line)),
      el("td", {}, el("code", {}, e.code)),
      el("td", {}, e.detail, more.length ? el("ul", { class: "field-errors" }, more.map((f) => el("li", {}, el("code", {}, f.field), ": ", f.detail))) : null));
  }));
  $("import-errors").hidden = errs.length === 0;
  $("import-more").hidden = !body.more_errors;
  $("import-more").textContent = body.more_errors ? `The first ${errs.length} of ${body.rows.failed} row errors are shown; download them all.` : "";
  $("import-download").hidden = body.rows.failed === 0;
  $("import-done").hidden = body.status !== "completed" || body.rows.applied === 0;
}

async function sendImport(files) {
  const file = files && files[0];
  if (!file) return;
  $("import-error").textContent = "";
  say("");
  const others = files.length > 1 ? ` (one file at a time: the other ${files.length - 1} were not sent)` : "";
  const bar = $("import-upload");
  bar.value = 0;
  bar.hidden = false;
  $("import-sending").textContent = `Sending ${file.name}…${others}`;
  try {
    const { body } = await sendFile("POST", "/imports", file, importType(file.name, file.type), (f) => { bar.value = f; });
    recentImports.remember(body, file.name);
    imp.last = body;
    sayNext(`${file.name} was accepted: ${body.rows.total} ${body.rows.total === 1 ? "row" : "rows"} to apply${others}.`);
    $("import-sending").textContent = "";
    if (location.hash === `#/import/${body.id}`) route();
    else location.hash = `#/import/${body.id}`;
  } catch (e) {
    $("import-sending").textContent = "";
    $("import-error").textContent = `${file.name} was refused${e.status ? ` (HTTP ${e.status})` : ""}: ${e.message}`;
    $("import-error").dataset.status = String(e.status);
  } finally {
    bar.hidden = true;
  }
}

function renderRecentImports() {
  const list = recentImports.list();
  $("import-recent").replaceChildren(...list.map((r) => el("li", {},
    el("a", { href: `#/import/${r.id}`, "aria-current": r.id === imp.id ? "page" : false }, r.name),
    ` — ${r.status === "completed" ? "completed" : r.status}, ${r.rows ? importCounts(r.rows) : ""}, ${new Date(r.created_at).toLocaleTimeString()}`)));
  $("import-recent-empty").hidden = list.length > 0;
}

$("import-download").addEventListener("click", async () => {
  const id = imp.id;
  if (!id) return;
  const button = $("import-download");
  button.disabled = true;
  $("import-download-note").textContent = "";
  try {
    const blob = await fetchBlob(`/imports/${encodeURIComponent(id)}/errors`);
    const url = URL.createObjectURL(blob);
    const a = el("a", { href: url, download: `import-${id}-errors.ndjson`, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    say(`The row errors are downloaded as import-${id}-errors.ndjson (one JSON object a line).`);
  } catch (e) {
    $("import-download-note").textContent = "Could not download the errors: " + e.message;
  } finally {
    button.disabled = false;
  }
});

const importZone = $("import-drop");
importZone.addEventListener("dragover", (e) => { e.preventDefault(); importZone.classList.add("over"); });
importZone.addEventListener("dragleave", () => importZone.classList.remove("over"));
importZone.addEventListener("drop", (e) => {
  e.preventDefault();
  importZone.classList.remove("over");
  sendImport([...e.dataTransfer.files]);
});
$("import-file").addEventListener("change", (e) => { sendImport([...e.target.files]); e.target.value = ""; });

// ---------- dead letters (admin keys) ----------

async function renderDead() {
  currentNav = "dead";
  show("dead");
  $("dead-error").textContent = "";
  try {
    const { body } = await call("GET", "/admin/dead-letters?limit=200");
    $("dead-rows").replaceChildren(...body.items.map((dl) => el("tr", {},
      el("td", {}, el("code", {}, dl.job.image_id)),
      el("td", {}, el("a", { href: `#/products/${dl.job.product_id}` }, dl.job.product_id.slice(-12))),
      el("td", {}, dl.code),
      el("td", {}, dl.detail),
      el("td", {}, String(dl.attempts)),
      el("td", {}, new Date(dl.failed_at).toLocaleString()),
      el("td", {}, el("button", { type: "button", "aria-label": `Replay image ${dl.job.image_id}`, onclick: (e) => replay(dl, e.target) }, "Replay")))));
    $("dead-empty").hidden = body.items.length > 0;
  } catch (e) {
    $("dead-error").textContent = e instanceof ApiError && e.status === 403
      ? "Dead letters need a key with the admin scope." : "Could not list dead letters: " + e.message;
  }
}

async function replay(dl, button) {
  button.disabled = true;
  try {
    await call("POST", `/admin/dead-letters/${dl.job.image_id}/replay`);
    button.closest("tr").remove();
    say(`Image ${dl.job.image_id} is queued again.`);
  } catch (e) {
    button.disabled = false;
    $("dead-error").textContent = "Replay failed: " + e.message;
  }
}

// ---------- routing ----------

async function route() {
  if (!carry) say("");
  carry = false;
  const h = location.hash || "#/products";
  if (!session.signedIn || h === "#/signin") return renderSignIn();
  if ($("who").hidden) await afterSignIn();
  if (!h.startsWith("#/products/") && h !== "#/new") stopEditor();
  stopImport();
  if (h === "#/import" || h.startsWith("#/import/")) return renderImport(h.slice("#/import/".length) || null);
  if (h === "#/new") return renderEditor(null);
  if (h.startsWith("#/products/")) return renderEditor(h.slice("#/products/".length));
  if (h === "#/dead-letters") return renderDead();
  return renderProducts();
}

window.addEventListener("hashchange", () => { route(); $("main").focus(); });
route();
