// The API as the admin page calls it: the signed-in key, JSON calls,
// uploads with progress, and a product's live events.

const storageKey = "vitrine.key";

// The key lives in this tab's sessionStorage: closing the tab forgets it,
// and it never goes into a URL (where logs and history would keep it).
export const session = {
  get key() { return sessionStorage.getItem(storageKey); },
  set key(v) { if (v === null) sessionStorage.removeItem(storageKey); else sessionStorage.setItem(storageKey, v); },
  get signedIn() { return sessionStorage.getItem(storageKey) !== null; },
};

function authHeaders(extra = {}) {
  const h = { ...extra };
  const key = session.key;
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

// ApiError is an answer other than 2xx, with its problem document.
export class ApiError extends Error {
  constructor(status, problem, etag) {
    super((problem && problem.detail) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.etag = etag;
  }
}

// call sends a request and returns {status, etag, body}; non-2xx throws.
// json is sent as contentType (application/json unless said otherwise,
// e.g. application/merge-patch+json for a merge patch).
export async function call(method, path, { json, contentType = "application/json", headers = {}, signal } = {}) {
  const init = { method, headers: authHeaders(headers), signal, cache: "no-store" };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = contentType;
  }
  const res = await fetch(path, init);
  const etag = res.headers.get("ETag");
  const text = await res.text();
  let body = null;
  if (text) {
    try { body = JSON.parse(text); } catch { body = text; }
  }
  if (!res.ok) throw new ApiError(res.status, typeof body === "object" ? body : null, etag);
  return { status: res.status, etag, body };
}

// sendFile sends a file as the raw body of a request with contentType,
// reporting progress as a fraction, and resolves to {status, etag, body}
// for a 2xx (a non-2xx rejects with its problem, as call does).
// XMLHttpRequest is used because fetch() reports no upload progress.
export function sendFile(method, path, file, contentType, onProgress = () => {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, path);
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.setRequestHeader("Content-Type", contentType);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      const etag = xhr.getResponseHeader("ETag");
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve({ status: xhr.status, etag, body });
      } else {
        reject(new ApiError(xhr.status, body, etag));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, { detail: "the file could not be sent: the server was not reached, or closed the connection" }));
    xhr.send(file);
  });
}

// upload sends one photo as the raw body (its type decided by the server
// from its bytes), reporting progress as a fraction.
export async function upload(productID, file, onProgress) {
  const { body } = await sendFile("POST", `/products/${encodeURIComponent(productID)}/images`, file,
    file.type || "application/octet-stream", onProgress);
  return body;
}

// fetchBlob GETs path with the signed-in key and returns its body as a
// Blob (for a download the browser cannot make itself: a link cannot send
// the Authorization header).
export async function fetchBlob(path) {
  const res = await fetch(path, { headers: authHeaders(), cache: "no-store" });
  if (!res.ok) {
    let problem = null;
    try { problem = await res.json(); } catch { /* not JSON */ }
    throw new ApiError(res.status, problem, res.headers.get("ETag"));
  }
  return res.blob();
}

// EventStream follows a product's events. Browsers' EventSource cannot
// send an Authorization header, so the stream is read with fetch(): the
// same text/event-stream, parsed here, reconnecting with Last-Event-ID
// after any end, so nothing retained is missed.
export class EventStream {
  constructor(productID, onEvent, onState = () => {}) {
    this.path = `/products/${encodeURIComponent(productID)}/events`;
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastId = null;
    this.retry = 2000;
    this.stopped = false;
    this.abort = null;
  }

  start() {
    this.loop();
    return this;
  }

  stop() {
    this.stopped = true;
    if (this.abort) this.abort.abort();
  }

  async loop() {
    while (!this.stopped) {
      this.abort = new AbortController();
      try {
        const headers = authHeaders({ Accept: "text/event-stream" });
        if (this.lastId !== null) headers["Last-Event-ID"] = this.lastId;
        const res = await fetch(this.path, { headers, signal: this.abort.signal, cache: "no-store" });
        if (res.status === 404 || res.status === 401 || res.status === 403) {
          this.onState("closed", res.status);
          return;
        }
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        this.onState("open");
        await this.read(res.body);
      } catch (e) {
        if (this.stopped) return;
        this.onState("retrying", e.message);
      }
      if (this.stopped) return;
      await new Promise((r) => setTimeout(r, this.retry));
    }
  }

  // read parses the stream (https://html.spec.whatwg.org/#event-stream-interpretation).
  async read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "", data = [], type = "", id = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let nl;
      while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(buf[nl] === "\r" && buf[nl + 1] === "\n" ? nl + 2 : nl + 1);
        if (line === "") {
          if (id !== null) this.lastId = id;
          if (data.length) {
            let parsed = null;
            try { parsed = JSON.parse(data.join("\n")); } catch { /* not JSON */ }
            this.onEvent({ id: this.lastId, type: type || "message", data: parsed });
          }
          data = []; type = ""; id = null;
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "data") data.push(val);
        else if (field === "event") type = val;
        else if (field === "id") id = val;
        else if (field === "retry" && /^\d+$/.test(val)) this.retry = Number(val);
      }
    }
  }
}
