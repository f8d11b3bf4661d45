// vitrine admin page: plain ES modules, no framework and no build step, so
// the page is exactly these files, embedded in the binary.
import { session, call, upload, ApiError, EventStream } from "./api.js";
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

const views = ["signin", "products", "editor", "dead"];
function show(view) {
  for (const v of views) $("view-" + v).hidden = v !== view;
  for (const [id, v] of [["nav-products", "products"], ["nav-new", "new"], ["nav-dead", "dead"]]) {
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
  const first = p.images.find((i) => i.status === "ready") || p.images[0];
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

const ed = { id: null, version: 0, dirty: false, saving: false, queued: [], stream: null, cards: new Map(), unclaimed: new Map(), uploading: 0 };

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

async function renderEditor(id) {
  stopEditor();
  currentNav = id ? "" : "new";
  show("editor");
  $("conflict").hidden = true;
  $("confirm-delete").hidden = true;
  ed.id = id; ed.version = 0; ed.queued = []; ed.cards = new Map(); ed.unclaimed = new Map(); ed.uploading = 0;
  $("cards").replaceChildren();
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
  fillForm(body);
  $("editor-title").textContent = "Edit " + body.name;
  for (const img of body.images) cardFor(img.id).update(img);
  for (const id of [...ed.cards.keys()]) {
    if (!body.images.some((i) => i.id === id) && ed.cards.get(id).imageId) ed.cards.get(id).remove();
  }
}

function onEvent(ev) {
  const seq = Number(ev.id);
  if (ev.type === "stream.reset") {
    if (!ed.dirty) loadProduct().catch(() => {});
    return;
  }
  if (ev.type.startsWith("image.")) {
    const img = ev.data && ev.data.data;
    if (img && !ed.cards.has(img.id) && ed.uploading > 0) {
      // Likely one of our uploads, whose answer has not arrived yet: its
      // card takes it then.
      ed.unclaimed.set(img.id, img);
    } else if (img) {
      cardFor(img.id).update(img);
    }
    // An image's change is a new version of the product, not a change of
    // its fields: the form stays current.
    if (ed.version === seq - 1) ed.version = seq;
    return;
  }
  if (ev.type === "product.updated") {
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
    ed.version = versionOf(etag);
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

// A card is one photo: an upload under way, then its image's status.
class Card {
  constructor(key, label) {
    this.key = key;
    this.imageId = null;
    this.file = null;
    this.state = el("span", { class: "state" });
    this.reason = el("p", { class: "reason" });
    this.progress = el("progress", { max: "1", value: "0", "aria-label": "Upload of " + label });
    this.retry = el("button", { type: "button", class: "secondary", hidden: true, onclick: () => this.onRetry() }, "Retry");
    this.thumbBox = el("div", { class: "thumb" });
    this.name = el("p", { class: "name" }, label);
    this.li = el("li", { class: "card" }, this.thumbBox, this.name, this.progress, el("p", {}, this.state), this.reason, this.retry);
    $("cards").append(this.li);
  }

  setState(state, reason = "") {
    this.li.dataset.state = state;
    this.state.className = "state " + state;
    this.state.textContent = state;
    this.reason.textContent = reason;
    this.retry.hidden = state !== "failed";
    this.retry.setAttribute("aria-label", `Retry ${this.name.textContent}`);
  }

  update(img) {
    if (!this.imageId) {
      this.imageId = img.id;
      this.li.dataset.imageId = img.id;
      ed.cards.set(img.id, this);
    }
    if (!this.file) this.progress.hidden = true;
    const shown = this.thumbBox.dataset.status;
    if (shown !== img.status) {
      const t = thumbnail(img, "thumb", this.name.textContent);
      this.thumbBox.replaceWith(t);
      this.thumbBox = t;
      this.thumbBox.dataset.status = img.status;
    }
    this.setState(img.status, img.error ? `${img.error.code}: ${img.error.detail}` : "");
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
    } catch (e) {
      this.setState("failed", e.message);
      this.uploadFailed = true;
    } finally {
      ed.uploading--;
      if (ed.uploading === 0) {
        for (const img of ed.unclaimed.values()) cardFor(img.id).update(img); // someone else's
        ed.unclaimed.clear();
      }
    }
  }

  async onRetry() {
    if (this.uploadFailed || !this.imageId) {
      this.uploadFailed = false;
      return this.send();
    }
    try {
      const { body } = await call("POST", `/products/${ed.id}/images/${this.imageId}/reprocess`);
      this.update(body);
    } catch (e) {
      this.setState("failed", "Retry refused: " + e.message);
    }
  }

  remove() {
    this.li.remove();
    ed.cards.delete(this.imageId);
  }
}

function cardFor(imageId) {
  return ed.cards.get(imageId) || new Card(imageId, "photo " + imageId.slice(-6));
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
  addFiles(e.dataTransfer.files);
});
$("files").addEventListener("change", (e) => { addFiles(e.target.files); e.target.value = ""; });

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
  if (h === "#/new") return renderEditor(null);
  if (h.startsWith("#/products/")) return renderEditor(h.slice("#/products/".length));
  if (h === "#/dead-letters") return renderDead();
  return renderProducts();
}

window.addEventListener("hashchange", () => { route(); $("main").focus(); });
route();
