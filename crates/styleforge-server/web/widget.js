/*
 * styleforge widget. Add to a page:
 *
 *   <script src="https://STYLEFORGE_HOST/widget.js" data-key="pk_..." async></script>
 *
 * then mark elements:
 *
 *   <img src="photo.jpg" data-styleforge>          a "Restyle" button and a strip of styles
 *                                                   under the image; the image is replaced by
 *                                                   the result (data-styleforge-replace="false"
 *                                                   keeps it)
 *   <div data-styleforge-avatar></div>             an avatar picker: choose a photo, adjust the
 *                                                   square crop, pick a style; 512x512 output
 *   <div data-styleforge-live></div>               a live camera: the camera restyled as it
 *                                                   moves (frames stylised by the server over a
 *                                                   WebSocket), a strip of styles and an fps
 *                                                   counter; data-styleforge-style="cartoon-paprika"
 *                                                   picks the first style, and
 *                                                   data-styleforge-autostart starts the camera
 *                                                   at once (the browser asks for it)
 *   data-styleforge-theme="stormy sea"             on any: start with styles matching these
 *                                                   keywords (users can type their own)
 *
 * Results arrive as a `styleforge:result` DOM event on the marked element (it bubbles):
 * event.detail = { blob, url, style: {name, title, method} | null, result, width, height, mode }.
 * A live camera sends `styleforge:live` with { state: "started" | "stopped", style: name | null }.
 * Failures arrive as `styleforge:error` with { code, message }. The UI lives in shadow roots, so
 * the page's CSS does not reach it. StyleForge.scan(root) mounts elements added later (new
 * elements are also picked up automatically).
 */
(function () {
  "use strict";
  if (window.StyleForge && window.StyleForge.loaded) return;

  var script = document.currentScript;
  var KEY = (script && script.getAttribute("data-key")) || "";
  var BASE = (function () {
    var s = script && script.getAttribute("data-server");
    if (s) return s.replace(/\/+$/, "");
    try {
      return new URL(script.src, location.href).origin;
    } catch (e) {
      return location.origin;
    }
  })();
  // BEGIN GENERATED CLIENT: from the OpenAPI document by
  // `styleforge_server::openapi::widget_client`. Do not edit: regenerate with
  // STYLEFORGE_BLESS=1 cargo test --release --workspace --test service web::
  var OPERATIONS = {
    detect_faces: ["POST", "/v1/faces", [], []],
    get_job: ["GET", "/v1/jobs/{id}", ["id"], []],
    get_result: ["GET", "/v1/results/{id}", ["id"], []],
    list_methods: ["GET", "/v1/methods", [], []],
    list_styles: ["GET", "/v1/styles", [], ["q", "method", "sort"]],
    live: ["GET", "/v1/live", [], ["style", "method", "model", "strength", "preserve_color", "temporal_weight"]],
    stylize: ["POST", "/v1/stylize", [], []],
    upload_image: ["POST", "/v1/images", [], []],
  };
  function route(operationId, params) {
    var op = OPERATIONS[operationId];
    if (!op) throw new Error("no operation " + operationId + " in the API");
    params = params || {};
    var path = op[1];
    op[2].forEach(function (name) {
      if (params[name] === undefined || params[name] === null) throw new Error(operationId + " needs " + name);
      path = path.replace("{" + name + "}", encodeURIComponent(String(params[name])));
    });
    var query = [];
    Object.keys(params).forEach(function (name) {
      if (op[2].indexOf(name) >= 0) return;
      if (op[3].indexOf(name) < 0) throw new Error(operationId + " has no parameter " + name);
      var v = params[name];
      if (v !== undefined && v !== null && v !== "") query.push(encodeURIComponent(name) + "=" + encodeURIComponent(String(v)));
    });
    return { method: op[0], url: query.length ? path + "?" + query.join("&") : path };
  }
  // END GENERATED CLIENT
  var AVATAR_SIZE = 512;
  // The longest side of the copy of a chosen photo sent to find its face and preview filters.
  var FACE_SIDE = 1024;
  // The side of a filter's preview on the user's photo.
  var PREVIEW_SIZE = 176;
  // What needs nothing but a style name (GET /v1/methods): the model kinds of methods whose
  // style is the model, and, when a method for style images can run, the built-in paintings.
  // The widget offers those styles. Filters are the kinds of the cartoon method (cartoon
  // filters, anime generators): their cards preview them on the user's photo.
  var selfContained = null;
  function offered() {
    if (!selfContained) {
      selfContained = json(route("list_methods").url).then(function (methods) {
        var offer = { kinds: {}, filters: {}, paintings: false };
        methods.forEach(function (m) {
          if (m.style === "model") {
            m.model_kinds.forEach(function (k) {
              offer.kinds[k] = true;
              if (m.name === "cartoon") offer.filters[k] = true;
            });
          } else if (m.style === "images" && m.available) {
            offer.paintings = true;
          }
        });
        return offer;
      });
      selfContained.catch(function () {
        selfContained = null;
      });
    }
    return selfContained;
  }

  var CSS = [
    ":host{all:initial!important;display:block!important;visibility:visible!important;opacity:1!important;",
    "font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif!important;color:#1c1d26!important;",
    "--sf-accent:#5b4cf0;--sf-line:#e3e5ee;--sf-soft:#f2f3f8;--sf-muted:#636779;margin:8px 0!important;max-width:100%!important}",
    "*{box-sizing:border-box;font:inherit;color:inherit;margin:0}",
    "[hidden]{display:none!important}",
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}",
    "button{cursor:pointer;border:1px solid transparent;border-radius:10px;background:none;padding:0}",
    "button:focus-visible,input:focus-visible,.crop:focus-visible{outline:none;box-shadow:0 0 0 3px rgba(91,76,240,.4)}",
    ".box{background:#fff;border:1px solid var(--sf-line);border-radius:14px;padding:12px;box-shadow:0 4px 18px rgba(20,22,40,.07)}",
    ".toggle,.btn{display:inline-flex;align-items:center;gap:6px;min-height:36px;padding:6px 14px;font-weight:600;",
    "border-color:var(--sf-line);background:#fff}",
    ".toggle:hover,.btn:hover{border-color:var(--sf-accent);color:var(--sf-accent)}",
    ".toggle svg{width:16px;height:16px;color:var(--sf-accent)}",
    ".toggle[aria-expanded=true]{background:var(--sf-accent);color:#fff;border-color:var(--sf-accent)}",
    ".toggle[aria-expanded=true] svg{color:#fff}",
    ".primary{background:var(--sf-accent);color:#fff;border-color:var(--sf-accent)}",
    ".primary:hover{color:#fff;filter:brightness(1.08)}",
    ".panel{margin-top:8px}",
    ".search{position:relative;margin-bottom:10px}",
    ".search input{width:100%;min-height:38px;padding:7px 10px 7px 34px;border:1px solid var(--sf-line);border-radius:10px;background:#fff}",
    ".search svg{position:absolute;left:10px;top:50%;width:16px;height:16px;transform:translateY(-50%);color:var(--sf-muted)}",
    ".strip{display:flex;gap:8px;overflow-x:auto;padding:3px 3px 8px;scroll-snap-type:x proximity;scrollbar-width:thin}",
    ".card{position:relative;flex:none;width:88px;scroll-snap-align:start;display:flex;flex-direction:column;gap:4px;",
    "padding:4px;border-color:var(--sf-line);background:#fff;text-align:center}",
    ".card:hover{border-color:var(--sf-accent)}",
    ".card[aria-pressed=true]{border-color:var(--sf-accent);box-shadow:0 0 0 2px var(--sf-accent)}",
    ".card img,.card .ph{display:block;width:100%;aspect-ratio:1;object-fit:cover;border-radius:7px;background:var(--sf-soft)}",
    ".card .ph{display:grid;place-items:center;color:var(--sf-muted);font-size:22px;font-weight:600}",
    ".card span.t{display:block;font-size:12px;font-weight:600;line-height:1.2;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}",
    ".card.busy::after{content:'';position:absolute;left:50%;top:38%;width:24px;height:24px;margin:-12px;border-radius:50%;",
    "border:3px solid rgba(255,255,255,.6);border-top-color:var(--sf-accent);animation:sfspin .8s linear infinite}",
    "@keyframes sfspin{to{transform:rotate(1turn)}}",
    ".status{font-size:13px;color:var(--sf-muted);margin-top:2px}",
    ".status:empty{display:none}",
    ".status .link{min-height:0;padding:0 2px}",
    ".status.error{color:#c62f4b;font-weight:500}",
    ".head{display:flex;align-items:center;justify-content:space-between;gap:8px;margin-bottom:10px;font-weight:650}",
    ".brand{font-size:11px;font-weight:600;color:var(--sf-muted);letter-spacing:.02em}",
    ".avatar-row{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}",
    ".crop{position:relative;width:min(240px,100%);aspect-ratio:1;border-radius:12px;overflow:hidden;background:var(--sf-soft);",
    "touch-action:none;cursor:grab;flex:none}",
    ".crop.dragging{cursor:grabbing}",
    ".crop canvas{display:block;width:100%;height:100%}",
    ".crop .ring{position:absolute;inset:0;border-radius:50%;box-shadow:0 0 0 999px rgba(255,255,255,.45);pointer-events:none;",
    "outline:2px solid rgba(255,255,255,.9);outline-offset:-2px}",
    ".pick{display:grid;place-items:center;gap:8px;width:min(240px,100%);aspect-ratio:1;border:2px dashed var(--sf-line);",
    "border-radius:12px;background:var(--sf-soft);text-align:center;padding:12px;flex:none}",
    ".pick.over{border-color:var(--sf-accent)}",
    ".pick p{font-size:13px;color:var(--sf-muted)}",
    ".side{display:grid;gap:10px;align-content:start;min-width:160px;flex:1}",
    ".zoom{display:grid;gap:4px;font-size:13px;font-weight:600}",
    ".zoom input{width:100%;accent-color:var(--sf-accent)}",
    ".crop .styled{position:absolute;inset:0;width:100%;height:100%;object-fit:cover}",
    ".note{font-size:13px;color:var(--sf-muted)}",
    ".refused{display:grid;gap:4px}",
    ".link{color:var(--sf-accent);font-weight:600;font-size:13px;min-height:32px;padding:4px 2px;justify-self:start}",
    ".live-row{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}",
    ".live{position:relative;width:min(320px,100%);aspect-ratio:4/3;border-radius:12px;overflow:hidden;background:var(--sf-soft);flex:none}",
    ".live video,.live canvas{position:absolute;inset:0;width:100%;height:100%;object-fit:cover}",
    ".fps{font-weight:650;color:var(--sf-accent);font-variant-numeric:tabular-nums}",
    ".live-row .btn{justify-self:start}",
    "@media (max-width:520px){.avatar-row,.live-row{justify-content:center}.side{flex-basis:100%}}",
    "@media (prefers-reduced-motion:reduce){.card.busy::after{animation:none}}",
  ].join("");

  var ICON_WAND =
    '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="m4 20 11-11m-2-2 4 4M16 3v3m4 2h-3m1.5-4.5-2 2" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round"/></svg>';
  var ICON_SEARCH =
    '<svg viewBox="0 0 24 24" aria-hidden="true"><circle cx="11" cy="11" r="6.5" fill="none" stroke="currentColor" stroke-width="2"/><path d="m16 16 4 4" stroke="currentColor" stroke-width="2" stroke-linecap="round"/></svg>';

  var uid = 0;

  function WidgetError(code, message) {
    this.code = code;
    this.message = message;
  }

  function notAllowedMessage() {
    return "Styles are not available here: this site (" + location.origin + ") is not allowed to use this styleforge key.";
  }

  function friendly(code, message) {
    if (code === "origin_not_allowed" || code === "origin_required") return notAllowedMessage();
    if (code === "rate_limited") return "Too many requests right now. Try again in a minute.";
    if (code === "invalid_key" || code === "key_revoked" || code === "missing_key") return "This site's styleforge key is not valid.";
    if (code === "quota_exceeded") return "This site has used up its storage for restyled images.";
    return message;
  }

  // A failed fetch hides the reason; an opaque no-cors request tells a refused origin (the server
  // answers) from a service that cannot be reached.
  function diagnose() {
    return fetch(BASE + "/healthz", { mode: "no-cors", credentials: "omit", cache: "no-store" }).then(
      function () {
        return new WidgetError("origin_not_allowed", notAllowedMessage());
      },
      function () {
        return new WidgetError("unreachable", "The style service cannot be reached right now.");
      }
    );
  }

  function call(path, opts) {
    opts = opts || {};
    var headers = {};
    if (KEY) headers.Authorization = "Bearer " + KEY;
    var body = opts.body;
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    } else if (opts.type) {
      headers["Content-Type"] = opts.type;
    }
    return fetch(BASE + path, {
      method: opts.method || "GET",
      headers: headers,
      body: body,
      mode: "cors",
      credentials: "omit",
    }).then(
      function (r) {
        if (r.ok) return r;
        return r
          .json()
          .catch(function () {
            return {};
          })
          .then(function (j) {
            var code = j.code || "http_" + r.status;
            throw new WidgetError(code, friendly(code, j.message || r.statusText || "Request failed"));
          });
      },
      function () {
        return diagnose().then(function (e) {
          throw e;
        });
      }
    );
  }

  function json(path, opts) {
    return call(path, opts).then(function (r) {
      return r.json();
    });
  }

  var allStyles = null;
  function styles(query) {
    var q = (query || "").trim();
    var keep = function (j) {
      return offered().then(function (offer) {
        return j.styles.filter(function (s) {
          return s.kind === "builtin" ? offer.paintings : s.kind === "model" && !!offer.kinds[s.method];
        });
      });
    };
    if (q) return json(route("list_styles", { q: q }).url).then(keep);
    if (!allStyles) {
      allStyles = json(route("list_styles").url).then(keep);
      allStyles.catch(function () {
        allStyles = null;
      });
    }
    return allStyles;
  }

  // The filter `s` applied to the uploaded photo `imageId` (an object URL, or null), fetched once.
  var previews = {};
  function preview(s, imageId) {
    var key = imageId + "\n" + s.name;
    if (!previews[key]) {
      previews[key] = call(s.thumbnail_url + "?size=" + PREVIEW_SIZE + "&image=" + encodeURIComponent(imageId))
        .then(function (r) {
          return r.blob();
        })
        .then(function (b) {
          return URL.createObjectURL(b);
        })
        .catch(function () {
          delete previews[key];
          return null;
        });
    }
    return previews[key];
  }

  var thumbs = {};
  function thumb(s) {
    if (!s.thumbnail_url) return Promise.resolve(null);
    if (!thumbs[s.name]) {
      thumbs[s.name] = call(s.thumbnail_url + "?size=176")
        .then(function (r) {
          return r.blob();
        })
        .then(function (b) {
          return URL.createObjectURL(b);
        })
        .catch(function () {
          delete thumbs[s.name];
          return null;
        });
    }
    return thumbs[s.name];
  }

  function sleep(ms) {
    return new Promise(function (r) {
      setTimeout(r, ms);
    });
  }

  function upload(blob) {
    return json(route("upload_image").url, { method: "POST", body: blob, type: blob.type || "application/octet-stream" }).then(function (i) {
      return i.id;
    });
  }

  function waitJob(id) {
    return json(route("get_job", { id: id }).url).then(function (j) {
      if (j.state === "succeeded") return j.result;
      if (j.state === "failed" || j.state === "cancelled") {
        throw new WidgetError("job_" + j.state, j.error ? j.error.message : "The restyle did not finish.");
      }
      return sleep(700).then(function () {
        return waitJob(id);
      });
    });
  }

  // Stylises an uploaded image with a style (a model runs by its own method; the server picks the
  // method for a painting); resolves to { blob, result, width, height }.
  function stylise(imageId, style, maxSize) {
    var req = { image: imageId, style: style.name, format: "png" };
    if (style.kind === "model") req.method = style.method;
    if (maxSize) req.max_size = maxSize;
    return call(route("stylize").url, { method: "POST", json: req })
      .then(function (r) {
        return r.json().then(function (j) {
          return r.status === 202 ? waitJob(j.job) : j.result;
        });
      })
      .then(function (resultId) {
        return call(route("get_result", { id: resultId }).url)
          .then(function (r) {
            return r.blob();
          })
          .then(function (blob) {
            return size(blob).then(function (wh) {
              return { blob: blob, result: resultId, width: wh[0], height: wh[1] };
            });
          });
      });
  }

  function size(blob) {
    if (!window.createImageBitmap) return Promise.resolve([0, 0]);
    return createImageBitmap(blob).then(
      function (b) {
        var wh = [b.width, b.height];
        if (b.close) b.close();
        return wh;
      },
      function () {
        return [0, 0];
      }
    );
  }

  function h(tag, attrs, children) {
    var e = document.createElement(tag);
    attrs = attrs || {};
    for (var k in attrs) {
      var v = attrs[k];
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else if (k.slice(0, 2) === "on") e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    (children || []).forEach(function (c) {
      if (c) e.appendChild(c);
    });
    return e;
  }

  function icon(markup) {
    var t = document.createElement("template");
    t.innerHTML = markup;
    return t.content.firstChild;
  }

  function emit(target, name, detail) {
    target.dispatchEvent(new CustomEvent(name, { detail: detail, bubbles: true, composed: true }));
  }

  function shell(target, mode) {
    var host = document.createElement("styleforge-widget");
    host.setAttribute("data-mode", mode);
    var root = host.attachShadow({ mode: "open" });
    root.appendChild(h("style", { text: CSS }));
    return { host: host, root: root };
  }

  // The keyword box and the strip of styles; `apply(style|null, card)` runs on a click.
  // Errors that no retry fixes: the key or this site's origin is refused.
  var FATAL = { origin_not_allowed: true, origin_required: true, invalid_key: true, key_revoked: true, missing_key: true };

  // Replaces a widget's content with the reason it cannot work here.
  function refuse(box, e) {
    box.classList.add("refused");
    box.setAttribute("role", "alert");
    box.replaceChildren(h("span", { class: "brand", text: "styleforge" }), h("p", { class: "status error", text: e.message }));
  }

  function picker(theme, apply, originalLabel, onFatal) {
    var id = "sf" + ++uid;
    var input = h("input", {
      type: "search",
      id: id + "-q",
      placeholder: "Theme: stormy sea, neon…",
      autocomplete: "off",
      spellcheck: "false",
      value: theme || "",
    });
    var strip = h("div", { class: "strip", role: "group", "aria-label": "Styles" });
    var status = h("p", { class: "status", role: "status", "aria-live": "polite" });
    var seq = 0;
    var selected = "";
    var photoId = null; // the user's uploaded photo: filter cards preview on it
    var filterKinds = {};

    // Marks the card of `name` ("" for the no-style card, null for none) as chosen.
    function mark(name) {
      selected = name;
      Array.prototype.forEach.call(strip.children, function (c) {
        c.setAttribute("aria-pressed", c.getAttribute("data-style") === name ? "true" : "false");
      });
    }

    function card(style) {
      var name = style ? style.name : "";
      var title = style ? style.title : originalLabel;
      var ph = h("span", { class: "ph", "aria-hidden": "true", text: style ? title.charAt(0).toUpperCase() : "\u2205" });
      var b = h("button", { type: "button", class: "card", "data-style": name, "aria-pressed": name === selected ? "true" : "false", title: style ? style.description || title : title }, [
        ph,
        h("span", { class: "t", text: title }),
      ]);
      b.addEventListener("click", function () {
        if (b.classList.contains("busy")) return;
        apply(style, b);
      });
      b._style = style;
      if (style && style.kind === "model" && filterKinds[style.method]) {
        b.setAttribute("data-filter", "");
        picture(b);
      } else if (style)
        thumb(style).then(function (url) {
          if (url) ph.replaceWith(h("img", { src: url, alt: "" }));
        });
      return b;
    }

    // Shows a filter card's picture: the filter on the user's photo when there is one (its usual
    // thumbnail before, or when the preview fails).
    function picture(b) {
      var style = b._style;
      var id = photoId;
      var set = function (url, onPhoto) {
        if (!url || id !== photoId) return;
        b.replaceChild(h("img", { src: url, alt: "" }), b.firstChild);
        b.setAttribute("data-preview", onPhoto ? "photo" : "style");
        b.setAttribute("aria-label", style.title + (onPhoto ? ", filter, previewed on your photo" : ", filter"));
      };
      var plain = function () {
        if (b.getAttribute("data-preview") === "style") return;
        thumb(style).then(function (url) {
          set(url, false);
        });
      };
      if (!id) return plain();
      preview(style, id).then(function (url) {
        if (url) set(url, true);
        else plain();
      });
    }

    function load() {
      var mine = ++seq;
      status.className = "status";
      status.textContent = "Loading styles…";
      return Promise.all([styles(input.value), offered()]).then(
        function (both) {
          var list = both[0];
          filterKinds = both[1].filters;
          if (mine !== seq) return;
          strip.innerHTML = "";
          strip.appendChild(card(null));
          list.forEach(function (s) {
            strip.appendChild(card(s));
          });
          status.textContent = list.length ? "" : input.value.trim() ? "No style matches “" + input.value.trim() + "”." : "No styles available.";
        },
        function (e) {
          if (mine !== seq) return;
          strip.innerHTML = "";
          if (FATAL[e.code] && onFatal) {
            onFatal(e);
            return;
          }
          status.className = "status error";
          status.textContent = e.message + " ";
          status.appendChild(h("button", { type: "button", class: "link", text: "Try again", onclick: load }));
        }
      );
    }

    var timer = 0;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(load, 250);
    });

    var el = h("div", { class: "panel" }, [
      h("div", { class: "search" }, [
        h("label", { class: "sr", for: id + "-q", text: "Find styles by theme or keywords" }),
        icon(ICON_SEARCH),
        input,
      ]),
      strip,
      status,
    ]);
    return {
      el: el,
      load: load,
      mark: mark,
      // The style a card offers, by name (null when the strip has no such card).
      find: function (name) {
        var c = Array.prototype.find.call(strip.children, function (x) {
          return x.getAttribute("data-style") === name;
        });
        return c ? c._style : null;
      },
      // Previews the filters on the uploaded photo `id` (null: back to their thumbnails).
      photo: function (id) {
        photoId = id;
        Array.prototype.forEach.call(strip.querySelectorAll(".card[data-filter]"), picture);
      },
      say: function (text, error) {
        status.className = error ? "status error" : "status";
        status.textContent = text;
      },
    };
  }

  function fail(target, ui, e) {
    var err = e instanceof WidgetError ? e : new WidgetError("error", String((e && e.message) || e));
    ui.say(err.message, true);
    emit(target, "styleforge:error", { code: err.code, message: err.message });
  }

  // ------------------------------------------------------------------------------------------
  // Images marked with data-styleforge

  function mountImage(img) {
    var s = shell(img, "image");
    var original = null;
    var current = null;
    var uploaded = null;
    var maxSize = Number(img.getAttribute("data-styleforge-max-size")) || 1024;
    var replace = img.getAttribute("data-styleforge-replace") !== "false";
    var panelId = "sf" + ++uid + "-panel";

    var ui = picker(img.getAttribute("data-styleforge-theme"), apply, "Original", function (e) {
      refuse(panel, e);
    });
    var toggle = h("button", { type: "button", class: "toggle", "aria-expanded": "false", "aria-controls": panelId }, [
      icon(ICON_WAND),
      document.createTextNode("Restyle"),
    ]);
    var panel = h("div", { class: "box panel", id: panelId, hidden: true }, [
      h("div", { class: "head" }, [h("span", { text: "Pick a style" }), h("span", { class: "brand", text: "styleforge" })]),
      ui.el,
    ]);
    ui.el.classList.remove("panel");
    s.root.appendChild(h("div", {}, [toggle, panel]));
    ui.mark("");
    var loaded = false;
    toggle.addEventListener("click", function () {
      var open = panel.hidden;
      panel.hidden = !open;
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      if (open && !loaded) {
        loaded = true;
        ui.load().then(function () {
          ui.mark(current ? current.style.name : "");
        });
      }
    });

    function source() {
      if (!uploaded) {
        var src = img.currentSrc || img.src;
        uploaded = fetch(src, { credentials: "same-origin" })
          .then(
            function (r) {
              if (!r.ok) throw new Error();
              return r.blob();
            },
            function () {
              throw new Error();
            }
          )
          .catch(function () {
            throw new WidgetError("unreadable_image", "This image cannot be read by the page, so it cannot be restyled.");
          })
          .then(upload);
        uploaded.catch(function () {
          uploaded = null;
        });
      }
      return uploaded;
    }

    function apply(style, cardEl) {
      if (!style) {
        if (original) {
          img.src = original.src;
          if (original.srcset) img.setAttribute("srcset", original.srcset);
        }
        current = null;
        ui.mark("");
        ui.say("Back to the original.");
        return;
      }
      cardEl.classList.add("busy");
      ui.say("Applying " + style.title + "…");
      source()
        .then(function (id) {
          return stylise(id, style, maxSize);
        })
        .then(function (r) {
          var url = URL.createObjectURL(r.blob);
          if (replace) {
            if (!original) original = { src: img.getAttribute("src"), srcset: img.getAttribute("srcset") };
            img.removeAttribute("srcset");
            img.src = url;
          }
          current = { style: style, url: url };
          ui.mark(style.name);
          ui.say(style.title + " applied.");
          emit(img, "styleforge:result", {
            blob: r.blob,
            url: url,
            style: { name: style.name, title: style.title, method: style.method },
            result: r.result,
            width: r.width,
            height: r.height,
            mode: "image",
          });
        })
        .catch(function (e) {
          fail(img, ui, e);
        })
        .then(function () {
          cardEl.classList.remove("busy");
        });
    }

    img.insertAdjacentElement("afterend", s.host);
    var fit = function () {
      var w = img.getBoundingClientRect().width;
      if (w >= 200) s.host.style.setProperty("max-width", Math.round(w) + "px", "important");
    };
    if (window.ResizeObserver) new ResizeObserver(fit).observe(img);
    fit();
  }

  // ------------------------------------------------------------------------------------------
  // Avatar pickers marked with data-styleforge-avatar

  function mountAvatar(target) {
    var s = shell(target, "avatar");
    var id = "sf" + ++uid;
    var photo = null; // { bitmap, w, h }
    var view = { z: 1, x: 0, y: 0 }; // zoom, and the crop centre in image pixels
    var crops = {};
    var photoSeq = 0;
    var moved = false; // the user moved or zoomed the crop since the photo was chosen
    var box = null;
    var ui = picker(target.getAttribute("data-styleforge-theme"), apply, "No style", function (e) {
      refuse(box, e);
    });

    var fileInput = h("input", { type: "file", accept: "image/*", class: "sr", id: id + "-file", tabindex: "-1", "aria-label": "Choose a photo" });
    var chooseBtn = h("button", { type: "button", class: "btn primary", text: "Choose a photo" });
    var pick = h("div", { class: "pick" }, [h("div", {}, [chooseBtn, h("p", { text: "or drop one here" })])]);
    var canvas = h("canvas", { width: "480", height: "480" });
    var crop = h(
      "div",
      {
        class: "crop",
        tabindex: "0",
        role: "group",
        "aria-roledescription": "crop area",
        "aria-label": "Crop: drag, or use the arrow keys, to move the photo; + and − zoom",
        hidden: true,
      },
      [canvas, h("img", { class: "styled", alt: "", hidden: true }), h("div", { class: "ring" })]
    );
    var styled = crop.querySelector(".styled");
    var zoom = h("input", { type: "range", min: "100", max: "400", value: "100", step: "5", id: id + "-zoom" });
    var zoomField = h("label", { class: "zoom", for: id + "-zoom" }, [h("span", { text: "Zoom" }), zoom]);
    var again = h("button", { type: "button", class: "link", text: "Choose another photo" });
    var intro = h("p", { class: "note", text: "A square picture, 512 × 512 pixels. After choosing a photo you can move and zoom it, then give it a style." });
    var applied = h("p", { class: "note", hidden: true });
    var side = h("div", { class: "side" }, [intro, zoomField, applied, again]);
    zoomField.hidden = true;
    again.hidden = true;
    box = h("div", { class: "box" }, [
      h("div", { class: "head" }, [h("span", { text: "Your avatar" }), h("span", { class: "brand", text: "styleforge" })]),
      h("div", { class: "avatar-row" }, [pick, crop, side]),
      ui.el,
      fileInput,
    ]);
    s.root.appendChild(box);
    target.appendChild(s.host);
    ui.mark(null);
    ui.load();

    function scaleFor() {
      var base = 1 / Math.min(photo.w, photo.h);
      return base * view.z; // crop side (fraction 1) over image pixels
    }

    // The square crop in image pixels: side and top-left corner.
    function cropRect() {
      var side = Math.min(photo.w, photo.h) / view.z;
      var x = Math.min(Math.max(view.x - side / 2, 0), photo.w - side);
      var y = Math.min(Math.max(view.y - side / 2, 0), photo.h - side);
      view.x = x + side / 2;
      view.y = y + side / 2;
      return { x: x, y: y, side: side };
    }

    function draw() {
      if (!photo) return;
      var r = cropRect();
      crop.setAttribute("data-crop", [Math.round(r.x), Math.round(r.y), Math.round(r.side)].join(","));
      var ctx = canvas.getContext("2d");
      ctx.imageSmoothingQuality = "high";
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      ctx.drawImage(photo.bitmap, r.x, r.y, r.side, r.side, 0, 0, canvas.width, canvas.height);
    }

    function load(file) {
      if (!file) return;
      var done = function (bitmap) {
        photo = { bitmap: bitmap, w: bitmap.width, h: bitmap.height };
        view = { z: 1, x: bitmap.width / 2, y: bitmap.height / 2 };
        crops = {};
        zoom.value = "100";
        pick.hidden = true;
        crop.hidden = false;
        zoomField.hidden = false;
        again.hidden = false;
        intro.hidden = true;
        unstyle();
        ui.mark(null);
        ui.photo(null);
        moved = false;
        draw();
        findFace(++photoSeq);
      };
      createImageBitmap(file).then(done, function () {
        ui.say("That file is not an image this browser can open.", true);
      });
    }

    // Sends a copy of the photo (at most FACE_SIDE pixels on its longer side) to find the face:
    // the crop starts on it (unless the user already moved it), and the filters preview on it.
    function findFace(mine) {
      var k = Math.min(1, FACE_SIDE / Math.max(photo.w, photo.h));
      var c = document.createElement("canvas");
      c.width = Math.max(1, Math.round(photo.w * k));
      c.height = Math.max(1, Math.round(photo.h * k));
      var ctx = c.getContext("2d");
      ctx.imageSmoothingQuality = "high";
      ctx.drawImage(photo.bitmap, 0, 0, c.width, c.height);
      crop.setAttribute("data-face", "looking");
      ui.say("Looking for a face…");
      new Promise(function (res) {
        c.toBlob(res, "image/jpeg", 0.9);
      })
        .then(upload)
        .then(function (imageId) {
          if (mine !== photoSeq) return;
          ui.photo(imageId);
          return json(route("detect_faces").url, { method: "POST", json: { image: imageId } });
        })
        .then(function (f) {
          if (!f || mine !== photoSeq) return;
          var sx = photo.w / f.width;
          var sy = photo.h / f.height;
          crop.setAttribute("data-face", f.found ? "found" : "none");
          if (!moved && f.found) {
            var side = f.crop.side * sx;
            zoom.value = String(Math.min(400, Math.max(100, (100 * Math.min(photo.w, photo.h)) / side)));
            view.z = Number(zoom.value) / 100;
            view.x = (f.crop.x + f.crop.side / 2) * sx;
            view.y = (f.crop.y + f.crop.side / 2) * sy;
            draw();
          }
          ui.say(
            f.found
              ? moved
                ? "Found a face. Pick a style when the crop suits you."
                : "Found your face: the crop starts on it. Drag or zoom to adjust, then pick a style."
              : "No face found: the crop starts at the centre. Drag or zoom to frame it, then pick a style."
          );
        })
        .catch(function (e) {
          if (mine !== photoSeq) return;
          crop.setAttribute("data-face", "error");
          ui.say("Drag the photo to frame it, then pick a style. (" + ((e && e.message) || "The face could not be looked for.") + ")");
        });
    }

    function cropped() {
      var r = cropRect();
      var key = [Math.round(r.x), Math.round(r.y), Math.round(r.side)].join(",");
      if (!crops[key]) {
        var c = document.createElement("canvas");
        c.width = c.height = AVATAR_SIZE;
        var ctx = c.getContext("2d");
        ctx.imageSmoothingQuality = "high";
        ctx.drawImage(photo.bitmap, r.x, r.y, r.side, r.side, 0, 0, AVATAR_SIZE, AVATAR_SIZE);
        crops[key] = new Promise(function (res) {
          c.toBlob(res, "image/jpeg", 0.92);
        }).then(function (blob) {
          return upload(blob).then(function (id) {
            return { blob: blob, id: id };
          });
        });
        crops[key].catch(function () {
          delete crops[key];
        });
      }
      return crops[key];
    }

    function show(blob, style) {
      var url = URL.createObjectURL(blob);
      if (style) {
        styled.src = url;
        styled.hidden = false;
        applied.textContent = style.title + " applied. Move or zoom the photo to change the crop.";
        applied.hidden = false;
      } else {
        unstyle();
      }
      return url;
    }

    // Back to editing the crop: the styled preview no longer matches it.
    function unstyle() {
      if (styled.hidden) return false;
      styled.hidden = true;
      applied.hidden = true;
      ui.mark(null);
      return true;
    }

    function edited() {
      moved = true;
      if (unstyle()) ui.say("Crop changed: pick a style to apply it again.");
    }

    function apply(style, cardEl) {
      if (!photo) {
        ui.say("Choose a photo first.", true);
        chooseBtn.focus();
        return;
      }
      cardEl.classList.add("busy");
      ui.say(style ? "Applying " + style.title + "…" : "Preparing your photo…");
      cropped()
        .then(function (c) {
          if (!style) return { blob: c.blob, result: null, width: AVATAR_SIZE, height: AVATAR_SIZE };
          return stylise(c.id, style, AVATAR_SIZE);
        })
        .then(function (r) {
          var url = show(r.blob, style);
          ui.mark(style ? style.name : "");
          ui.say(style ? "" : "Your photo, cropped.");
          emit(target, "styleforge:result", {
            blob: r.blob,
            url: url,
            style: style ? { name: style.name, title: style.title, method: style.method } : null,
            result: r.result,
            width: r.width,
            height: r.height,
            mode: "avatar",
          });
        })
        .catch(function (e) {
          fail(target, ui, e);
        })
        .then(function () {
          cardEl.classList.remove("busy");
        });
    }

    chooseBtn.addEventListener("click", function () {
      fileInput.click();
    });
    again.addEventListener("click", function () {
      fileInput.click();
    });
    fileInput.addEventListener("change", function () {
      load(fileInput.files[0]);
      fileInput.value = "";
    });
    pick.addEventListener("dragover", function (e) {
      e.preventDefault();
      pick.classList.add("over");
    });
    pick.addEventListener("dragleave", function () {
      pick.classList.remove("over");
    });
    pick.addEventListener("drop", function (e) {
      e.preventDefault();
      pick.classList.remove("over");
      load(e.dataTransfer && e.dataTransfer.files[0]);
    });

    zoom.addEventListener("input", function () {
      view.z = Number(zoom.value) / 100;
      edited();
      draw();
    });

    var drag = null;
    crop.addEventListener("pointerdown", function (e) {
      if (!photo) return;
      drag = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y };
      edited();
      crop.setPointerCapture(e.pointerId);
      crop.classList.add("dragging");
    });
    crop.addEventListener("pointermove", function (e) {
      if (!drag) return;
      var px = crop.getBoundingClientRect().width * scaleFor(); // screen pixels per image pixel
      view.x = drag.vx - (e.clientX - drag.x) / px;
      view.y = drag.vy - (e.clientY - drag.y) / px;
      draw();
    });
    var end = function () {
      drag = null;
      crop.classList.remove("dragging");
    };
    crop.addEventListener("pointerup", end);
    crop.addEventListener("pointercancel", end);
    crop.addEventListener("wheel", function (e) {
      if (!photo) return;
      e.preventDefault();
      zoom.value = String(Math.min(400, Math.max(100, Number(zoom.value) - Math.sign(e.deltaY) * 10)));
      view.z = Number(zoom.value) / 100;
      edited();
      draw();
    });
    crop.addEventListener("keydown", function (e) {
      if (!photo) return;
      var step = (e.shiftKey ? 40 : 10) / (crop.getBoundingClientRect().width * scaleFor());
      var k = e.key;
      if (k === "ArrowLeft") view.x -= step;
      else if (k === "ArrowRight") view.x += step;
      else if (k === "ArrowUp") view.y -= step;
      else if (k === "ArrowDown") view.y += step;
      else if (k === "+" || k === "=") zoom.value = String(Math.min(400, Number(zoom.value) + 10));
      else if (k === "-" || k === "_") zoom.value = String(Math.max(100, Number(zoom.value) - 10));
      else return;
      e.preventDefault();
      view.z = Number(zoom.value) / 100;
      edited();
      draw();
    });
  }


  // ------------------------------------------------------------------------------------------
  // Live cameras marked with data-styleforge-live: camera frames (320×240 JPEG) go to the server
  // over a WebSocket (GET /v1/live), at most two in flight; the stylised frames come back and are
  // drawn over the camera's picture.

  var LIVE_W = 320;
  var LIVE_H = 240;

  function mountLive(target) {
    var s = shell(target, "live");
    var style = null;
    var camera = null;
    var ws = null;
    var seq = 0;
    var running = false;
    var encoding = false;
    var failed = false;
    var inFlight = 0;
    var sent = 0;
    var received = 0;
    var lastReply = 0;
    var arrivals = [];
    var startedAt = 0;
    var timer = 0;
    var box = null;
    var ui = picker(target.getAttribute("data-styleforge-theme"), apply, "Camera", function (e) {
      refuse(box, e);
    });
    var video = h("video", { muted: true, playsinline: true, "aria-label": "Camera" });
    video.muted = true;
    var out = h("canvas", { width: String(LIVE_W), height: String(LIVE_H), role: "img", "aria-label": "The camera, stylised", hidden: true });
    var src = document.createElement("canvas");
    src.width = LIVE_W;
    src.height = LIVE_H;
    var startBtn = h("button", { type: "button", class: "btn primary", "aria-pressed": "false", text: "Start camera" });
    var fpsEl = h("span", { class: "fps", "data-fps": "0", text: "– fps" });
    var note = h("p", { class: "note", text: "Pick a style, then start the camera: you see yourself restyled as you move." });
    box = h("div", { class: "box" }, [
      h("div", { class: "head" }, [h("span", { text: "Live camera" }), h("span", { class: "brand", text: "styleforge" })]),
      h("div", { class: "live-row" }, [h("div", { class: "live" }, [video, out]), h("div", { class: "side" }, [note, startBtn, fpsEl])]),
      ui.el,
    ]);
    s.root.appendChild(box);
    target.appendChild(s.host);
    ui.mark("");
    ui.load().then(function () {
      var wanted = target.getAttribute("data-styleforge-style");
      var found = wanted ? ui.find(wanted) : null;
      if (found) {
        style = found;
        ui.mark(found.name);
      }
      if (target.hasAttribute("data-styleforge-autostart")) start();
    });

    function showFps() {
      var now = performance.now();
      while (arrivals.length && now - arrivals[0] > 2000) arrivals.shift();
      var span = Math.max(500, Math.min(2000, now - startedAt));
      var fps = running && style ? (arrivals.length * 1000) / span : 0;
      fpsEl.textContent = running && style ? fps.toFixed(1) + " fps" : "– fps";
      fpsEl.setAttribute("data-fps", fps.toFixed(2));
    }

    function pump() {
      var sock = ws;
      if (!running || !sock || sock.readyState !== 1 || encoding) return;
      if (inFlight > 0 && performance.now() - lastReply > 4000) inFlight = 0;
      if (inFlight >= 2 || video.readyState < 2 || !video.videoWidth) return;
      var k = Math.max(LIVE_W / video.videoWidth, LIVE_H / video.videoHeight);
      var w = video.videoWidth * k;
      var hh = video.videoHeight * k;
      src.getContext("2d").drawImage(video, (LIVE_W - w) / 2, (LIVE_H - hh) / 2, w, hh);
      encoding = true;
      var mine = seq;
      src.toBlob(
        function (blob) {
          encoding = false;
          if (!blob || mine !== seq || ws !== sock || sock.readyState !== 1) return;
          sock.send(blob);
          sent++;
          inFlight++;
          if (inFlight === 1) lastReply = performance.now();
          pump();
        },
        "image/jpeg",
        0.7
      );
    }

    function connect() {
      var mine = ++seq;
      if (ws) ws.close(1000, "style changed");
      ws = null;
      inFlight = 0;
      sent = 0;
      received = 0;
      arrivals = [];
      startedAt = performance.now();
      failed = false;
      out.hidden = true;
      if (!running) return;
      if (!style) {
        ui.say("Your camera, as it is.");
        return;
      }
      var chosen = style;
      ui.say("Connecting: " + chosen.title + "…");
      var sock = new WebSocket(BASE.replace(/^http/, "ws") + route("live", { style: chosen.name }).url);
      sock.binaryType = "arraybuffer";
      ws = sock;
      sock.onopen = function () {
        // A WebSocket cannot carry headers: the key is the first message (the server checks it
        // against this page's origin).
        sock.send(JSON.stringify({ type: "auth", key: KEY || null }));
        pump();
      };
      sock.onmessage = function (e) {
        if (mine !== seq) return;
        if (typeof e.data === "string") {
          var m;
          try {
            m = JSON.parse(e.data);
          } catch (x) {
            return;
          }
          if (m.type === "ready") {
            startedAt = performance.now();
            ui.say(chosen.title + ", live.");
          } else if (m.type === "stats") {
            // Frames the server dropped are never answered.
            inFlight = Math.max(0, Math.min(inFlight, sent - received - m.dropped));
          } else if (m.type === "error") {
            failed = true;
            fail(target, ui, new WidgetError(m.code, friendly(m.code, m.message)));
          }
          return;
        }
        received++;
        inFlight = Math.max(0, inFlight - 1);
        lastReply = performance.now();
        arrivals.push(lastReply);
        createImageBitmap(new Blob([e.data], { type: "image/jpeg" })).then(
          function (b) {
            if (mine === seq) {
              out.getContext("2d").drawImage(b, 0, 0, out.width, out.height);
              out.hidden = false;
            }
            if (b.close) b.close();
          },
          function () {}
        );
        showFps();
        pump();
      };
      sock.onclose = function (e) {
        if (mine !== seq) return;
        ws = null;
        out.hidden = true;
        if (running && !failed) {
          diagnose().then(function (d) {
            if (mine === seq) fail(target, ui, e.code === 1006 && d.code === "unreachable" ? d : new WidgetError("closed", "The live stream closed (" + (e.reason || e.code) + ")."));
          });
        }
      };
    }

    function start() {
      if (running) return;
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        ui.say("This browser cannot share a camera.", true);
        return;
      }
      ui.say("Asking for the camera…");
      navigator.mediaDevices
        .getUserMedia({ video: { width: { ideal: LIVE_W }, height: { ideal: LIVE_H }, frameRate: { ideal: 30 } }, audio: false })
        .then(function (stream) {
          camera = stream;
          video.srcObject = stream;
          var p = video.play();
          if (p && p.catch) p.catch(function () {});
          running = true;
          startBtn.textContent = "Stop camera";
          startBtn.setAttribute("aria-pressed", "true");
          note.hidden = true;
          timer = setInterval(function () {
            pump();
            showFps();
          }, 40);
          connect();
          emit(target, "styleforge:live", { state: "started", style: style ? style.name : null });
        })
        .catch(function (e) {
          fail(target, ui, new WidgetError("camera", e && e.name === "NotAllowedError" ? "The camera was not allowed." : "No camera could be opened."));
        });
    }

    function stop() {
      running = false;
      seq++;
      clearInterval(timer);
      if (ws) ws.close(1000, "stopped");
      ws = null;
      if (camera)
        camera.getTracks().forEach(function (t) {
          t.stop();
        });
      camera = null;
      video.srcObject = null;
      out.hidden = true;
      startBtn.textContent = "Start camera";
      startBtn.setAttribute("aria-pressed", "false");
      showFps();
      ui.say("Stopped.");
      emit(target, "styleforge:live", { state: "stopped", style: style ? style.name : null });
    }

    function apply(chosen) {
      style = chosen;
      ui.mark(chosen ? chosen.name : "");
      if (running) connect();
      else start();
    }

    startBtn.addEventListener("click", function () {
      if (running) stop();
      else start();
    });
  }

  // ------------------------------------------------------------------------------------------

  var mounted = new WeakSet();

  function scan(root) {
    root = root || document;
    if (!root.querySelectorAll) return;
    var found = [];
    var marked = "img[data-styleforge], [data-styleforge-avatar], [data-styleforge-live]";
    if (root.matches && root.matches(marked)) found.push(root);
    Array.prototype.push.apply(found, root.querySelectorAll(marked));
    found.forEach(function (e) {
      if (mounted.has(e)) return;
      mounted.add(e);
      if (e.hasAttribute("data-styleforge-avatar")) mountAvatar(e);
      else if (e.hasAttribute("data-styleforge-live")) mountLive(e);
      else mountImage(e);
    });
  }

  function start() {
    if (!KEY) console.warn("styleforge widget: the script tag has no data-key (a publishable pk_ key)");
    scan(document);
    if (window.MutationObserver) {
      new MutationObserver(function (records) {
        records.forEach(function (r) {
          Array.prototype.forEach.call(r.addedNodes, function (n) {
            if (n.nodeType === 1 && n.tagName !== "STYLEFORGE-WIDGET") scan(n);
          });
        });
      }).observe(document.documentElement, { childList: true, subtree: true });
    }
  }

  window.StyleForge = { loaded: true, version: 1, server: BASE, scan: scan };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
