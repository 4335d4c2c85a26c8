/* flowrun report: step filters, expand/collapse, opening a linked step, and the dataset
   rows table (rows live in a JSON script element; a page of them is drawn at a time).
   Text goes into the page with textContent only. */
(function () {
  "use strict";
  var $ = function (sel, root) { return (root || document).querySelector(sel); };
  var $$ = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };

  // -- steps: filter by status and by id ------------------------------------------------
  var stepFilter = "all";
  var steps = $$("#step-list > details.step");
  function applySteps() {
    var q = (($("#step-search") || {}).value || "").toLowerCase();
    steps.forEach(function (d) {
      var ok = (stepFilter === "all" || d.getAttribute("data-status") === stepFilter) &&
        (!q || (d.getAttribute("data-key") || "").toLowerCase().indexOf(q) >= 0);
      d.hidden = !ok;
    });
  }
  $$("#step-tools button[data-steps]").forEach(function (b) {
    b.addEventListener("click", function () {
      stepFilter = b.getAttribute("data-steps");
      $$("#step-tools button[data-steps]").forEach(function (x) { x.classList.toggle("on", x === b); });
      applySteps();
    });
  });
  var search = $("#step-search");
  if (search) { search.addEventListener("input", applySteps); }
  function setAll(open) {
    steps.forEach(function (d) { if (!d.hidden) { d.open = open; } });
  }
  var ex = $("#expand-all"), co = $("#collapse-all");
  if (ex) { ex.addEventListener("click", function () { setAll(true); }); }
  if (co) { co.addEventListener("click", function () { setAll(false); }); }

  // -- large runs: a step's body is markup kept in a script element until it is opened ---
  var LAZY = 'script[type="text/x-flowrun-body"]';
  function fill(d) {
    var s = null;
    for (var i = 0; i < d.children.length; i++) {
      if (d.children[i].matches(LAZY)) { s = d.children[i]; }
    }
    if (!s) { return; }
    // markup the report escaped when it was written; nested bodies had "</script" as "<\/script"
    s.previousElementSibling.innerHTML = s.textContent.replace(/<\\\/script/g, "</script");
    s.remove();
  }
  document.addEventListener("toggle", function (ev) {
    if (ev.target.tagName === "DETAILS" && ev.target.open) { fill(ev.target); }
  }, true);
  $$("details[open]").forEach(fill);
  function find(id) {
    var el = document.getElementById(id);
    if (el) { return el; }
    var needle = 'id="' + id + '"';
    var holder = $$(LAZY).filter(function (s) { return s.textContent.indexOf(needle) >= 0; })[0];
    if (!holder) { return null; }
    holder.parentElement.open = true;
    fill(holder.parentElement);
    return find(id);
  }

  // -- open the step a link points at (the graph, the timeline, "needs") -----------------
  function reveal(id) {
    var el = id && find(id);
    if (!el) { return; }
    for (var p = el; p; p = p.parentElement) {
      if (p.tagName === "DETAILS") { p.open = true; p.hidden = false; }
    }
    el.scrollIntoView({block: "start"});
  }
  document.addEventListener("click", function (ev) {
    var a = ev.target.closest ? ev.target.closest("a") : null;
    if (!a) { return; }
    var href = a.getAttribute("href") || a.getAttribute("xlink:href") || "";
    if (href.charAt(0) === "#" && href.length > 1) {
      ev.preventDefault();
      history.replaceState(null, "", href);
      reveal(decodeURIComponent(href.slice(1)));
    }
  });
  if (location.hash.length > 1) { reveal(decodeURIComponent(location.hash.slice(1))); }

  // -- dataset rows ------------------------------------------------------------------------
  var dataEl = $("#rows-data");
  if (!dataEl) { return; }
  var rows = JSON.parse(dataEl.textContent);           // [row, status, tokens, cost, inputs, outputs, error, steps]
  var meta = JSON.parse($("#rows-meta").textContent);  // {page, priced, anchors}
  var PAGE = meta.page || 100;
  var rowFilter = "all", page = 0, shown = rows;
  var body = $("#row-body"), detail = $("#row-detail");
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (cls) { td.className = cls; }
    tr.appendChild(td);
    return td;
  }
  function filterRows() {
    var q = ($("#row-search").value || "").toLowerCase();
    shown = rows.filter(function (r) {
      if (rowFilter !== "all" && r[1] !== rowFilter) { return false; }
      if (!q) { return true; }
      return (String(r[0]) + " " + r[4] + " " + r[5] + " " + r[6]).toLowerCase().indexOf(q) >= 0;
    });
    page = 0;
    draw();
  }
  function draw() {
    var pages = Math.max(1, Math.ceil(shown.length / PAGE));
    if (page >= pages) { page = pages - 1; }
    var frag = document.createDocumentFragment();
    shown.slice(page * PAGE, (page + 1) * PAGE).forEach(function (r) {
      var tr = document.createElement("tr");
      tr.className = "row";
      tr.setAttribute("data-row", r[0]);
      cell(tr, r[0]);
      var st = cell(tr, "");
      var badge = document.createElement("span");
      badge.className = "status st-" + String(r[1]).replace(/ /g, "-");
      badge.textContent = r[1];
      st.appendChild(badge);
      cell(tr, r[2]);
      if (meta.priced) { cell(tr, r[3] == null ? "" : "$" + Number(r[3]).toFixed(5), "cost"); }
      cell(tr, r[4]);
      cell(tr, r[6] || r[5], r[6] ? "err-short" : "");
      tr.addEventListener("click", function () { open(r, tr); });
      frag.appendChild(tr);
    });
    body.textContent = "";
    body.appendChild(frag);
    $("#row-page").textContent = "page " + (page + 1) + " of " + pages;
    $("#row-count").textContent = shown.length + " of " + rows.length + " rows";
    $("#row-prev").disabled = page === 0;
    $("#row-next").disabled = page >= pages - 1;
  }
  function open(r, tr) {
    $$("tr.sel", body).forEach(function (x) { x.classList.remove("sel"); });
    tr.classList.add("sel");
    detail.hidden = false;
    detail.textContent = "";
    var h = document.createElement("h4");
    h.textContent = "row " + r[0] + ": " + r[1] + (r[2] ? ", " + r[2] + " tokens" : "");
    detail.appendChild(h);
    [["inputs", r[4]], ["outputs", r[5]], ["error", r[6]]].forEach(function (p) {
      if (!p[1]) { return; }
      var l = document.createElement("div"); l.className = "label"; l.textContent = p[0];
      var pre = document.createElement("pre"); pre.textContent = p[1];
      if (p[0] === "error") { pre.className = "error"; }
      detail.appendChild(l); detail.appendChild(pre);
    });
    var l = document.createElement("div"); l.className = "label"; l.textContent = "steps of this row";
    detail.appendChild(l);
    var ul = document.createElement("ul"); ul.className = "row-steps";
    (r[7] || []).forEach(function (s) {
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.href = "#" + (meta.anchors[s[0]] || "");
      a.textContent = s[0];
      var b = document.createElement("span");
      b.className = "status st-" + String(s[1]).replace(/ /g, "-");
      b.textContent = s[1];
      li.appendChild(b); li.appendChild(document.createTextNode(" ")); li.appendChild(a);
      ul.appendChild(li);
    });
    detail.appendChild(ul);
  }
  $$("#row-tools button[data-rows]").forEach(function (b) {
    b.addEventListener("click", function () {
      rowFilter = b.getAttribute("data-rows");
      $$("#row-tools button[data-rows]").forEach(function (x) { x.classList.toggle("on", x === b); });
      filterRows();
    });
  });
  $("#row-search").addEventListener("input", filterRows);
  $("#row-prev").addEventListener("click", function () { page -= 1; draw(); });
  $("#row-next").addEventListener("click", function () { page += 1; draw(); });
  draw();
})();
