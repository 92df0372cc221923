/* codelink tag: keeps the creator scan token (cl_scan) of the landing URL
   first-party on this site, so it reaches checkout. Sends nothing anywhere.
   Options on the script tag (or window.codelinkConfig = {days: 30, ...}):
     data-days="30"            how long the token is kept (1-400 days)
     data-storage="both"       cookie | local | both
     data-cookie-domain=".shop.example"   share it with checkout.shop.example
     data-attach="form.checkout"          forms that get a hidden cl_scan input
     data-decorate="a.buy"     links that get the token in their query
     data-decorate-param="client_reference_id"   (default cl_scan)
   API: codelink.token(), codelink.code(), codelink.attach(form[, name]),
        codelink.decorate(link[, param]), codelink.clear(), codelink.version */
(function (w, d) {
  "use strict";
  if (w.codelink && w.codelink.version) return;
  var VERSION = "1";
  var NAME = "cl_scan";
  var DAY = 86400000;
  // {26-char scan id}.{code}.{channel}.{16-char signature}; or the form
  // Stripe accepts in client_reference_id, every '.' written as 'U' (a letter
  // neither the scan id, the signature nor a lowercase code uses).
  var SHAPE = /^[0-9A-HJKMNP-TV-Z]{26}([.U])[a-z0-9_-]{1,32}\1[a-z0-9_-]{0,32}\1[0-9A-HJKMNP-TV-Z]{16}$/;
  var me = d.currentScript;
  var data = (me && me.dataset) || {};
  var cfg = w.codelinkConfig || {};
  function opt(key, fallback) {
    var v = cfg[key] != null ? cfg[key] : data[key];
    return v == null || v === "" ? fallback : v;
  }
  var days = Number(opt("days", 30));
  if (!(days > 0)) days = 30;
  if (days > 400) days = 400;
  var storage = String(opt("storage", "both"));
  var useCookie = storage !== "local";
  var useLocal = storage !== "cookie";
  var domain = String(opt("cookieDomain", ""));

  function valid(t) {
    return typeof t === "string" && SHAPE.test(t);
  }
  function plain(t) {
    return t.indexOf(".") < 0 ? t.replace(/U/g, ".") : t;
  }
  function writeCookie(value, maxAge) {
    var c = NAME + "=" + value + "; Path=/; Max-Age=" + maxAge + "; SameSite=Lax";
    if (domain) c += "; Domain=" + domain;
    if (w.location.protocol === "https:") c += "; Secure";
    d.cookie = c;
  }
  function save(t) {
    var until = Date.now() + days * DAY;
    if (useLocal) {
      try { w.localStorage.setItem(NAME, JSON.stringify({ t: t, e: until })); } catch (e) { /* storage off */ }
    }
    if (useCookie) writeCookie(t, Math.round(days * 86400));
  }
  function fromUrl() {
    var m = /[?&]cl_scan=([^&#]*)/.exec(w.location.search);
    if (!m) return null;
    var t = m[1];
    try { t = decodeURIComponent(t); } catch (e) { return null; }
    return valid(t) ? plain(t) : null;
  }
  function fromLocal() {
    if (!useLocal) return null;
    try {
      var v = JSON.parse(w.localStorage.getItem(NAME) || "null");
      if (v && valid(v.t) && v.e > Date.now()) return v.t;
    } catch (e) { /* storage off or junk */ }
    return null;
  }
  function fromCookie() {
    if (!useCookie) return null;
    var m = /(?:^|;\s*)cl_scan=([^;]*)/.exec(d.cookie);
    return m && valid(m[1]) ? m[1] : null;
  }

  // The latest scan wins: a token on the landing URL replaces a kept one.
  var landed = fromUrl();
  if (landed) save(landed);

  function token() {
    return fromUrl() || fromLocal() || fromCookie();
  }
  function each(target, fn) {
    var list = typeof target === "string" ? d.querySelectorAll(target)
      : target && target.length != null && !target.tagName ? target : [target];
    for (var i = 0; i < list.length; i++) if (list[i]) fn(list[i]);
  }
  var api = {
    version: VERSION,
    /** The kept token, or null. */
    token: token,
    /** The creator code the token names (what a follower would type), or null. */
    code: function () {
      var t = token();
      return t ? t.split(".")[1] : null;
    },
    /** Puts the token in a hidden input of the form(s); returns the token. */
    attach: function (form, name) {
      var t = token();
      if (!t) return null;
      name = name || NAME;
      each(form, function (f) {
        var input = f.querySelector('input[name="' + name + '"]');
        if (!input) {
          input = d.createElement("input");
          input.type = "hidden";
          input.name = name;
          f.appendChild(input);
        }
        input.value = t;
      });
      return t;
    },
    /** Adds the token to the link(s)' query, as `param` (default cl_scan;
        client_reference_id gets the form Stripe Payment Links accept). */
    decorate: function (link, param) {
      var t = token();
      if (!t) return null;
      param = param || NAME;
      var value = param === "client_reference_id" ? t.replace(/\./g, "U") : t;
      each(link, function (a) {
        try {
          var u = new URL(a.href, w.location.href);
          u.searchParams.set(param, value);
          a.href = u.toString();
        } catch (e) { /* not a URL */ }
      });
      return value;
    },
    /** Forgets the token (e.g. once the order is placed). */
    clear: function () {
      try { w.localStorage.removeItem(NAME); } catch (e) { /* storage off */ }
      writeCookie("", 0);
    }
  };
  w.codelink = api;

  function auto() {
    var forms = opt("attach", "");
    var links = opt("decorate", "");
    if (forms) api.attach(forms);
    if (links) api.decorate(links, opt("decorateParam", NAME));
  }
  if (d.readyState === "loading") d.addEventListener("DOMContentLoaded", auto);
  else auto();
  // Forms added after load get the token when they are sent.
  d.addEventListener("submit", function (e) {
    var forms = opt("attach", "");
    if (forms && e.target.matches && e.target.matches(forms)) api.attach(e.target);
  }, true);
})(window, document);
